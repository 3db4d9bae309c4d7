"""Faults during a sweep (issue 8): a server that cannot start, a database that goes away, a
results database that cannot be written."""

from __future__ import annotations

import io
import json
import os
import sqlite3

import pytest
from django.core.management import call_command

from poolbench.models import Sweep, Trial
from poolbench.sweep.server import ServerError, TrialServer
from tests.conftest import descendants, run_manage
from tests.live import (
    LiveManage,
    drop_role,
    own_children_left,
    pg_admin,
    pg_url,
    processes_mentioning,
    scratch_database,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SUFFIX = os.environ.get("POOLBENCH_TEST_SUFFIX", "main")


@pytest.fixture
def no_children_left():
    before = descendants()
    yield
    assert own_children_left(before) == []


SHORT = ["--duration", "2", "--warmup", "1", "--users", "8", "--workers", "1", "--threads", "8"]


@pytest.mark.django_db(transaction=True)
def test_server_that_cannot_start_is_recorded_and_the_sweep_goes_on(monkeypatch, no_children_left):
    # The trial servers load tests.faulty_wsgi, which raises ImportError for pool size 3 only.
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "tests.settings_faults")
    monkeypatch.setenv("POOLBENCH_TEST_BROKEN_SIZE", "3")
    out, err = io.StringIO(), io.StringIO()
    call_command("poolbench", "--sizes", "3,5", *SHORT, stdout=out, stderr=err)
    sweep = Sweep.objects.get()
    assert sweep.status == Sweep.Status.DONE
    broken, fine = sweep.trials.order_by("index")
    assert (broken.pool_size, broken.status, broken.requests) == (3, Trial.Status.ERROR, 0)
    first_line, _, log = broken.error_text.partition("\n\n")
    assert first_line.startswith("the server exited with code ")
    assert first_line.endswith(
        " before answering: ImportError: tests.faulty_wsgi: this site cannot load with pool size 3"
    )
    # ... followed by the tail of gunicorn's own log.
    assert log.endswith("Reason: Worker failed to boot.")
    assert broken.finished_at is not None
    assert (fine.pool_size, fine.status) == (5, Trial.Status.OK) and fine.requests > 0
    assert err.getvalue().startswith("[1/2] pool 3, 1x8 threads: failed: the server exited with code ")
    assert "[2/2] pool 5, 1x8 threads: server up" in out.getvalue()


def test_trial_server_start_failures_carry_the_log(tmp_path, no_children_left):
    config = {"alias": "default", "database": {}, "settings_module": "tests.no_such_settings", "mode": "pool",
              "token": "t", "query_delay_ms": 0}  # fmt: skip
    server = TrialServer(config=config, workers=1, threads=2, state_dir=tmp_path, start_timeout=30)
    with pytest.raises(ServerError) as info:
        try:
            server.start()
        finally:
            server.stop()
    assert str(info.value).startswith("the server exited with code ")
    assert str(info.value).endswith(
        " before answering: ModuleNotFoundError: No module named 'tests.no_such_settings'"
    )
    assert "No module named 'tests.no_such_settings'" in info.value.log

    # An address that cannot be listened on is an error of this trial, not a crash of the sweep.
    server = TrialServer(config=config, workers=1, threads=2, state_dir=tmp_path, bind="192.0.2.1")
    with pytest.raises(ServerError) as info:
        server.start()
    assert str(info.value) == "cannot listen on 192.0.2.1: [Errno 99] Cannot assign requested address"
    assert server.proc is None


def test_database_that_goes_away_mid_sweep_keeps_the_trials_so_far(tmp_path):
    results = tmp_path / "results.sqlite3"
    with scratch_database(f"poolbench_{SUFFIX}_gone") as name:
        url = pg_url(name)
        run = LiveManage(
            "poolbench", "--database", "target", "--sizes", "2,4,6", *SHORT, "-v", "2", "--pool-timeout", "1",
            env={
                "DJANGO_SETTINGS_MODULE": "tests.settings_faults",
                "POOLBENCH_TEST_RESULTS": str(results),
                "POOLBENCH_TEST_TARGET_URL": url,
            },
            tmpdir=tmp_path,
        )  # fmt: skip
        first = run.wait_for(r"^\[1/3\] pool 2, .*req/s", timeout=120)
        run.wait_for(r"^\[2/3\] pool 4, .*server up on", after=first)
        with pg_admin() as admin:  # the database goes away as trial 2's load begins
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        code = run.finish()
    assert code == 1, run.stdout + run.stderr
    described = url.replace("postgres://", "postgresql://")
    message = run.err[-1]
    assert message.startswith(
        f"CommandError: the database of alias 'target' ({described}) does not answer any more: "
        "connection failed: "
    )
    assert f'database "{name}" does not exist' in message
    assert message.endswith(
        ". The sweep stopped before trial 3 of 3; its 2 finished trial(s) are kept in sweep #1. "
        "Start the database and run the sweep again"
    )
    with sqlite3.connect(results) as db:
        sweeps = db.execute("SELECT status, message FROM poolbench_sweep").fetchall()
        trials = db.execute(
            'SELECT "index", status, requests, failures, errors FROM poolbench_trial ORDER BY "index"'
        ).fetchall()
    assert sweeps == [("error", message.removeprefix("CommandError: "))]
    assert [t[:2] for t in trials] == [
        (1, "ok"),
        (2, "error"),
    ]  # every request failed: never ok (issue 16, item 9)
    assert trials[0][2] > 0 and trials[0][3] == 0
    # Trial 2 ran into the missing database: its failures are stored with their messages.
    assert trials[1][2] > 0 and trials[1][3] == trials[1][2]
    assert json.loads(trials[1][4]), "trial 2's errors were not stored"
    assert run.survivors() == [] and processes_mentioning(str(tmp_path)) == []


def test_results_database_that_cannot_be_written_stops_before_any_load(tmp_path):
    role = f"poolbench_{SUFFIX}_readonly"
    drop_role(role)
    try:
        with scratch_database(f"poolbench_{SUFFIX}_ro") as name:
            migrated = run_manage("migrate", "-v", "0", env={"DATABASE_URL": pg_url(name)})
            assert migrated.returncode == 0, migrated.stderr
            with pg_admin() as admin:
                admin.execute(f'CREATE ROLE "{role}" LOGIN')
            with pg_admin(name) as db:  # may read poolbench's tables, not write them
                db.execute(f'GRANT USAGE ON SCHEMA public TO "{role}"')
                db.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"')
            result = run_manage(
                "poolbench", "--sizes", "2", *SHORT,
                env={"DATABASE_URL": pg_url(name, user=role), "TMPDIR": str(tmp_path)},
            )  # fmt: skip
            with pg_admin(name) as db:
                stored = db.execute("SELECT count(*) FROM poolbench_sweep").fetchone()[0]
    finally:
        drop_role(role)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"CommandError: cannot write results to the database 'default' "
        f"({pg_url(name, user=role).replace('postgres://', 'postgresql://')}): "
        "permission denied for table poolbench_sweep. Give its user INSERT and UPDATE rights on poolbench's "
        "tables (or make the SQLite file writable), or point DATABASES['default'] at a database you can write"
    )
    assert stored == 0
    assert "starting server" not in result.stdout
    assert list(tmp_path.iterdir()) == []  # no trial was prepared, nothing was started


def test_read_only_sqlite_results_stop_before_any_load(tmp_path):
    results = tmp_path / "results.sqlite3"
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.settings_faults",
        "POOLBENCH_TEST_RESULTS": str(results),
        "POOLBENCH_TEST_TARGET_URL": pg_url("postgres"),  # only inspected: nothing is written there
    }
    migrated = run_manage("migrate", "--database", "default", "-v", "0", env=env)
    assert migrated.returncode == 0, migrated.stderr
    # Opened read-only (Django passes SQLite names as URIs): root would write to a chmod 0444 file.
    read_only = f"file:{results}?mode=ro"
    state = tmp_path / "state"
    state.mkdir()
    result = run_manage(
        "poolbench", "--database", "target", "--sizes", "2", *SHORT,
        env={**env, "POOLBENCH_TEST_RESULTS": read_only, "TMPDIR": str(state)},
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"CommandError: cannot write results to the database 'default' (sqlite:///{read_only}): attempt to write "
        "a readonly database. Give its user INSERT and UPDATE rights on poolbench's tables (or make the SQLite "
        "file writable), or point DATABASES['default'] at a database you can write"
    )
    assert "starting server" not in result.stdout and list(state.iterdir()) == []
    with sqlite3.connect(results) as db:
        assert db.execute("SELECT count(*) FROM poolbench_sweep").fetchone() == (0,)
