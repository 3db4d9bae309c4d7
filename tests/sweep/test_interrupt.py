"""Ctrl-C / SIGTERM at any point of a real sweep (issue 8): the finished trials are kept, the
running trial and the sweep are stored as interrupted, and no child process is left."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time

import pytest

from poolbench.sweep import children
from tests.live import LiveManage, TerminalManage, pg_url, processes_mentioning, scratch_database

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SUFFIX = os.environ.get("POOLBENCH_TEST_SUFFIX", "main")
SHORT = ["--duration", "4", "--warmup", "1", "--users", "8", "--workers", "1", "--threads", "8"]


def rows(results):
    with sqlite3.connect(results) as db:
        db.row_factory = sqlite3.Row
        sweeps = [dict(r) for r in db.execute("SELECT * FROM poolbench_sweep")]
        trials = [dict(r) for r in db.execute('SELECT * FROM poolbench_trial ORDER BY "index"')]
    return sweeps, trials


def wait_for_file(run: LiveManage, path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert run.proc.poll() is None, f"exited before {path.name} appeared:\n{run.stdout}\n{run.stderr}"
        assert time.monotonic() < deadline, f"{path.name} did not appear within {timeout}s"
        run.children()
        time.sleep(0.02)


def assert_nothing_left(run: LiveManage, tmp_path):
    assert run.seen, "the test never saw the command's children"
    assert run.survivors() == []
    assert processes_mentioning(str(tmp_path)) == []
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith(("poolbench-trial", "poolbench-pg-"))]
    assert left == [], "trial state or the embedded database's files were left behind"
    assert "Traceback" not in run.stderr, run.stderr


def test_ctrl_c_mid_trial_keeps_finished_and_partial_trials(tmp_path):
    """The README's default run (embedded PostgreSQL, results in SQLite) in a terminal; the user
    presses Ctrl-C during trial 2's load, and again, impatiently, while poolbench cleans up."""
    results = tmp_path / "results.sqlite3"
    run = TerminalManage(
        "poolbench", "--sizes", "2,4", *SHORT, "-v", "2",
        env={"DATABASE_URL": f"sqlite:///{results}"}, tmpdir=tmp_path,
    )  # fmt: skip
    first = run.wait_for(r"^\[1/2\] pool 2, .*req/s", timeout=120)
    run.wait_for(r"^\[2/2\] pool 4, .*server up on http://127\.0\.0\.1:", after=first)
    run.wait_for(r"^\[2/2\] pool 4, .*warm-up over, measuring", after=first)
    time.sleep(1.0)  # something is measured; the 4 s window is far from over
    run.press_ctrl_c()
    time.sleep(0.3)  # the second Ctrl-C comes while Locust's figures and the pool's are collected
    run.press_ctrl_c()
    code = run.finish()

    assert code == 1
    lines = [line for line in run.out if line.strip()]
    assert (
        lines[-1]
        == "CommandError: Interrupted: sweep #1 is marked interrupted; its finished trials are kept."
    )
    sweeps, trials = rows(results)
    assert [(s["status"], s["message"]) for s in sweeps] == [
        ("interrupted", "interrupted (Ctrl-C or SIGINT); finished trials are kept")
    ]
    assert sweeps[0]["finished_at"]
    done, cut = trials
    assert (done["pool_size"], done["status"], done["error_text"]) == (2, "ok", "")
    assert done["requests"] > 0 and done["duration_s"] >= 3
    assert (cut["pool_size"], cut["status"], cut["error_text"]) == (
        4,
        "interrupted",
        "interrupted (Ctrl-C or SIGINT)",
    )
    assert cut["finished_at"]
    # What was measured before the Ctrl-C is kept, and said to be partial.
    assert cut["requests"] > 0 and cut["rps"] > 0
    assert 0 < cut["duration_s"] < 4
    notes = json.loads(cut["notes"])
    assert any(
        n.startswith("interrupted after ") and "the figures cover that part only" in n for n in notes
    ), notes
    assert json.loads(cut["pool_stats"])["total"]["pool_max"] == 4
    # The table of what there is was still printed.
    assert "(interrupted)" in run.stdout
    assert_nothing_left(run, tmp_path)


@pytest.mark.parametrize(
    "when",
    [
        pytest.param(r"^\[1/2\] pool 2, .*starting server\.\.\.$", id="server-starting"),
        pytest.param(r"^\[1/2\] pool 2, .*req/s", id="between-trials"),
    ],
)
def test_sigterm_while_a_server_starts_or_between_trials(tmp_path, when):
    """SIGTERM (kill, CI) as the first server starts, or just after the first trial ended."""
    results = tmp_path / "results.sqlite3"
    env = {"DJANGO_SETTINGS_MODULE": "tests.settings_faults", "POOLBENCH_TEST_RESULTS": str(results)}
    # While a server starts: its workers are held at import (server/wsgi.py's test hook, never
    # released here), so the signal certainly comes while the command waits for the server.
    held = tmp_path / "never-released"
    if "starting" in when:
        env["POOLBENCH_HOLD_IMPORT"] = str(held)
    with scratch_database(f"poolbench_{SUFFIX}_sigterm") as name:
        run = LiveManage(
            "poolbench", "--database", "target", "--sizes", "2,4", *SHORT,
            env={**env, "POOLBENCH_TEST_TARGET_URL": pg_url(name)}, tmpdir=tmp_path,
        )  # fmt: skip
        run.wait_for(when, timeout=90)
        if "starting" in when:
            wait_for_file(run, tmp_path / f"{held.name}.held")
        run.send(signal.SIGTERM)
        code = run.finish()
    assert code == 1
    message = "CommandError: Interrupted: sweep #1 is marked interrupted; its finished trials are kept."
    assert run.err[-1] == message
    sweeps, trials = rows(results)
    assert [s["status"] for s in sweeps] == ["interrupted"]
    if "starting" in when:
        cut = trials
    else:
        assert (trials[0]["index"], trials[0]["status"]) == (1, "ok") and trials[0]["requests"] > 0
        cut = trials[1:]  # trial 2 may or may not have begun when the signal came
    assert [(t["status"], t["requests"]) for t in cut] in ([("interrupted", 0)], [])
    for t in cut:
        assert json.loads(t["notes"]) == ["interrupted before any load was measured"] and t["finished_at"]
    assert_nothing_left(run, tmp_path)


def test_sigint_while_the_embedded_database_starts(tmp_path):
    results = tmp_path / "results.sqlite3"
    run = LiveManage(
        "poolbench", "--sizes", "2", *SHORT, env={"DATABASE_URL": f"sqlite:///{results}"}, tmpdir=tmp_path
    )
    run.wait_for(r"^Starting an embedded PostgreSQL", timeout=60)
    time.sleep(0.3)
    run.send(signal.SIGINT)
    code = run.finish()
    assert code == 1
    assert run.err[-1] == "CommandError: Interrupted before the sweep began: nothing was stored."
    sweeps, trials = rows(results)
    assert sweeps == [] and trials == []
    assert "starting server" not in run.stdout
    # pgserver's postmaster is not our child (pg_ctl daemonizes it): look for it by its data directory.
    assert processes_mentioning("poolbench-pg-") == [] or all(
        str(tmp_path) not in p for p in processes_mentioning("poolbench-pg-")
    )
    assert processes_mentioning(str(tmp_path)) == []
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("poolbench-pg-")]
    assert "Traceback" not in run.stderr, run.stderr


def test_shielded_holds_a_signal_until_the_block_ends():
    """The mechanism under every cleanup: Ctrl-C inside is held, then raised once, after the block."""
    children.reset_interrupted()
    done = []
    with pytest.raises(KeyboardInterrupt):
        with children.shielded():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            with children.shielded():  # nested: the outer block decides
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
            done.append("cleanup ran to the end")
    assert done == ["cleanup ran to the end"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    # Once interrupted, a later signal held by a shield is not raised again: the first one is
    # already stopping everything.
    with children.shielded():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
    children.reset_interrupted()

    with children.shielded(reraise=False):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    # A block already leaving with an error keeps that error.
    with pytest.raises(ValueError):
        with children.shielded():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            raise ValueError("first")
    children.reset_interrupted()
