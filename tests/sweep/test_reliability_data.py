"""Nothing lost (issue 16, items 1, 3, 4 and 9): an export never overwrites a database or someone else's
file and is written atomically; a trial that measured nothing never counts toward the recommendation;
a sweep whose command died is marked abandoned."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import psutil
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from poolbench.models import Sweep, Trial
from poolbench.results import analysis, export, stale
from poolbench.wire import FORK_SERVER_MODULE
from tests.conftest import assert_refused, run_manage
from tests.live import LiveManage, pg_url, scratch_database
from tests.sample_sweeps import make_sweep

SUFFIX = os.environ.get("POOLBENCH_TEST_SUFFIX", "main")
SHORT = ["--duration", "4", "--warmup", "1", "--users", "8", "--workers", "1", "--threads", "8"]


@pytest.fixture
def sqlite_file(tmp_path, monkeypatch):
    """A configured SQLite database file (the alias ``lite`` pointed at a real file)."""
    db = tmp_path / "res.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE kept (x)")
    monkeypatch.setitem(settings.DATABASES, "lite", {**settings.DATABASES["lite"], "NAME": str(db)})
    return db


# --- item 1: exports -------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("option", ["--report", "--json"])
@pytest.mark.parametrize("suffix", ["", "-wal"])
def test_an_export_never_names_a_database_file(sqlite_file, option, suffix, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    given = sqlite_file.name + suffix  # relative: the same file under another spelling
    message = (
        f"{option} {given}: that is the SQLite database file of DATABASES['lite'] (writing there would "
        "destroy the database); write the report to another file, e.g. report.html"
    )
    assert_refused([option, given, "--overwrite"], message)
    with sqlite3.connect(sqlite_file) as conn:  # untouched
        assert conn.execute("SELECT count(*) FROM kept").fetchone() == (0,)


@pytest.mark.django_db
def test_an_export_refuses_a_file_poolbench_did_not_write(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    assert_refused(
        ["--json", str(notes)],
        f"--json {notes}: the file exists and is not a report poolbench wrote; choose another file name, "
        "or add --overwrite to replace it",
    )
    assert notes.read_text() == "my notes\n"


@pytest.mark.django_db
def test_overwrite_lets_a_foreign_file_pass_validation(tmp_path):
    from poolbench.management.commands.poolbench import Command

    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    cmd = Command()
    parser = cmd.create_parser("manage.py", "poolbench")
    cmd.build_options(vars(parser.parse_args(["--sizes", "2", "--report", str(notes), "--overwrite"])))
    assert notes.read_text() == "my notes\n"  # validation writes nothing


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", export.FORMATS)
def test_poolbench_report_replaces_its_own_output_but_not_a_database(fmt, tmp_path, sqlite_file):
    make_sweep([{"pool_size": 2, "rps": 100.0}])
    out = tmp_path / f"report.{fmt}"
    for _ in range(2):  # the second run replaces the file the first one wrote, without --overwrite
        call_command("poolbench_report", "--format", fmt, "--output", str(out), stderr=io.StringIO())
    assert export.written_by_poolbench(out)
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(CommandError, match="that is the SQLite database file of DATABASES"):
        call_command("poolbench_report", "--format", fmt, "--output", str(sqlite_file), "--overwrite")
    foreign = tmp_path / "other.txt"
    foreign.write_text("x")
    with pytest.raises(CommandError, match="is not a report poolbench wrote; .* add --overwrite"):
        call_command("poolbench_report", "--format", fmt, "--output", str(foreign))
    call_command("poolbench_report", "--format", fmt, "-o", str(foreign), "--overwrite", stderr=io.StringIO())
    assert export.written_by_poolbench(foreign)


def test_a_failed_write_leaves_the_old_file_whole(tmp_path, monkeypatch):
    report = tmp_path / "report.html"
    report.write_text("the old report")
    report.chmod(0o640)

    def broken(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError, match="No space left"):
        export.write(report, "<!DOCTYPE html>\n" + "x" * 100_000)
    assert report.read_text() == "the old report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temporary file left
    monkeypatch.undo()
    export.write(report, "new")
    assert report.read_text() == "new" and report.stat().st_mode & 0o777 == 0o640


# --- items 4 and 9: no data, no recommendation ----------------------------------------------------


@pytest.mark.django_db
def test_a_size_without_data_is_not_called_smaller_and_worse():
    sweep = make_sweep(
        [
            {"pool_size": 2, "rps": 0.0, "requests": 40, "failures": 40, "status": Trial.Status.ERROR},
            {"pool_size": 5, "rps": 900.0},
            {"pool_size": 8, "rps": 0.0, "requests": 30, "failures": 30},  # "ok", but nothing succeeded
        ]
    )
    trials = list(sweep.trials.all())
    assert [s.size for s in analysis.by_size(trials)] == [5]
    size, why = analysis.recommend(analysis.by_size(trials), 0.05, analysis.sizes_without_data(trials))
    assert size == 5
    assert "no smaller size came within" not in why
    assert "size 2 measured nothing (its trials failed)" in why


@pytest.mark.parametrize("text", ["60001", "120000"])
def test_query_delay_is_bounded(text):
    from poolbench.sweep.options import parse_query_delay
    from poolbench.sweep.plan import PlanError

    with pytest.raises(PlanError) as info:
        parse_query_delay(text)
    assert str(info.value) == (
        f"--query-delay-ms '{text}' is more than 60000 (one minute per query); give at most --query-delay-ms 60000"
    )
    assert parse_query_delay("60000") == 60000.0


@pytest.mark.django_db
def test_query_delay_over_the_bound_is_refused_before_anything_starts():
    assert_refused(
        ["--query-delay-ms", "120000"],
        "--query-delay-ms '120000' is more than 60000 (one minute per query); give at most --query-delay-ms 60000",
    )


# --- item 3: abandoned sweeps ---------------------------------------------------------------------


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _running_sweep(host: dict) -> Sweep:
    sweep = make_sweep([{"pool_size": 2, "rps": 10.0}], status=Sweep.Status.RUNNING, host=host)
    sweep.trials.update(status=Trial.Status.RUNNING, finished_at=None)
    return sweep


@pytest.mark.django_db
def test_a_running_sweep_whose_command_is_gone_is_marked_abandoned():
    here = socket.gethostname()
    me = stale.process_identity()
    dead = _running_sweep({"hostname": here, "pid": _dead_pid()})
    reused = _running_sweep({"hostname": here, "pid": os.getpid(), "pid_started": me["pid_started"] - 3600})
    alive = _running_sweep(me)
    elsewhere = _running_sweep({"hostname": here + "-other", "pid": _dead_pid()})
    old = _running_sweep({"hostname": here})  # stored before the pid was recorded: cannot be checked
    assert sorted(stale.mark_abandoned()) == sorted([dead.pk, reused.pk])
    status = dict(Sweep.objects.values_list("pk", "status"))
    assert status == {
        dead.pk: "abandoned",
        reused.pk: "abandoned",
        alive.pk: "running",
        elsewhere.pk: "running",
        old.pk: "running",
    }
    trial = dead.trials.get()
    assert trial.status == "abandoned" and trial.finished_at is not None
    assert trial.error_text.startswith(
        f"abandoned: the command that ran this sweep (pid {dead.host['pid']} on "
    )
    assert stale.mark_abandoned() == []


@pytest.mark.django_db
def test_the_admin_list_marks_abandoned_sweeps(admin_client):
    sweep = _running_sweep({"hostname": socket.gethostname(), "pid": _dead_pid()})
    response = admin_client.get("/admin/poolbench/sweep/")
    assert response.status_code == 200
    sweep.refresh_from_db()
    assert sweep.status == "abandoned" and "abandoned" in response.content.decode()


# --- item 4: the trial server killed mid-trial (and item 3 at a sweep's start) ---------------------


def stale_sweep(results, host: dict) -> None:
    """A sweep row a SIGKILL left running, written straight into the results file."""
    with sqlite3.connect(results) as db:
        values = {"status": "running", "alias": "target", "host": json.dumps(host)}
        for _, column, kind, notnull, _, pk in db.execute("PRAGMA table_info(poolbench_sweep)"):
            if notnull and not pk and column not in values:
                kind = kind.lower()
                number = kind.startswith(("integer", "bool", "real", "smallint", "bigint"))
                values[column] = 0 if number else timezone.now().isoformat() if "date" in kind else "{}"
        db.execute(
            f"INSERT INTO poolbench_sweep ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
            list(values.values()),
        )


def _kill_trial_server(run: LiveManage, tmp_path) -> None:
    """SIGKILL the gunicorn of the trial being measured, once Locust has dropped its measure mark."""
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("poolbench-trial-*/measure-start")):
        assert run.proc.poll() is None, run.stdout + run.stderr
        assert time.monotonic() < deadline, "the measured window never began"
        run.children()
        time.sleep(0.02)
    # gunicorn run as its own command, or forked by the fork server (a child of it, same command line)
    servers = [
        p
        for p in run.children()
        if "gunicorn" in " ".join(p.cmdline())
        or (FORK_SERVER_MODULE in p.cmdline() and p.ppid() != run.proc.pid)
    ]
    assert servers, "no trial server found"
    for p in servers:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass


@pytest.mark.postgres
@pytest.mark.slow
def test_a_trial_server_killed_mid_trial_keeps_locusts_figures(tmp_path, no_stray_children):
    results = tmp_path / "results.sqlite3"
    env = {"DJANGO_SETTINGS_MODULE": "tests.settings_faults", "POOLBENCH_TEST_RESULTS": str(results)}
    with scratch_database(f"poolbench_{SUFFIX}_killed") as name:
        env["POOLBENCH_TEST_TARGET_URL"] = pg_url(name)
        migrated = run_manage("migrate", "-v", "0", env=env)
        assert migrated.returncode == 0, migrated.stderr
        stale_sweep(results, {"hostname": socket.gethostname(), "pid": _dead_pid()})
        run = LiveManage(
            "poolbench", "--database", "target", "--sizes", "2,4", "-v", "2",
            *SHORT, env=env, tmpdir=tmp_path,
        )  # fmt: skip
        try:
            _kill_trial_server(run, tmp_path)
        finally:
            run.finish()
    assert "Sweep #1 was left running by a command that is gone: marked abandoned." in run.stderr
    with sqlite3.connect(results) as db:
        db.row_factory = sqlite3.Row
        sweeps = {r["id"]: dict(r) for r in db.execute("SELECT * FROM poolbench_sweep")}
        trials = [dict(r) for r in db.execute('SELECT * FROM poolbench_trial ORDER BY "index"')]
    assert sweeps[1]["status"] == "abandoned"
    killed, second = trials
    assert (killed["pool_size"], killed["status"]) == (2, "error")
    assert killed["error_text"].startswith("the statistics endpoint did not answer")
    assert killed["requests"] > 0 and killed["latency_p50_ms"] is not None, "Locust's figures were dropped"
    assert any("the trial server's statistics are missing" in n for n in json.loads(killed["notes"]))
    assert (second["pool_size"], second["status"]) == (4, "ok")
    recommendation = sweeps[2]["recommendation"]
    assert sweeps[2]["recommended_size"] == 4
    assert "no smaller size came within" not in recommendation
    assert "size 2 measured nothing" in recommendation


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_trial_in_which_no_request_succeeded_is_never_ok(no_stray_children):
    with pytest.raises(CommandError, match="Every trial of sweep #.* failed"):
        call_command(
            "poolbench", "--sizes", "2", "--duration", "2", "--warmup", "0", "--users", "4",
            "--workers", "1", "--threads", "4", "--locustfile", "tests/locust_all_fail.py",
            stdout=io.StringIO(), stderr=io.StringIO(),
        )  # fmt: skip
    trial = Sweep.objects.get().trials.get()
    assert trial.status == "error" and trial.requests > 0 and trial.failures == trial.requests
    assert trial.error_text.startswith(
        f"no request succeeded ({trial.requests} requests, {trial.failures} failures)"
    )
