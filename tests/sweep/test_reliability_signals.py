"""Smaller items of issue 16 (item 11): a burst of Ctrl-C ends with status 1 and one message, and two
first runs on one fresh SQLite results file at once both find their tables."""

from __future__ import annotations

import os
import signal
import sqlite3
import time

import pytest

from tests.conftest import run_manage
from tests.live import LiveManage, pg_url, scratch_database

SUFFIX = os.environ.get("POOLBENCH_TEST_SUFFIX", "main")
SHORT = ["--duration", "2", "--warmup", "0.5", "--users", "4", "--workers", "1", "--threads", "4"]


def until(condition, run: LiveManage, what: str, timeout: float = 90) -> None:
    """Poll for an outcome (the phase it depends on is held by the hook, not timed)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert run.proc.poll() is None, f"exited early:\n{run.stdout}\n{run.stderr}"
        assert time.monotonic() < deadline, f"{what}:\n{run.stdout}\n{run.stderr}"
        run.children()
        time.sleep(0.02)


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("gap", [0.0, 0.05, 0.2], ids=["together", "50ms", "200ms"])
def test_a_burst_of_ctrl_c_ends_with_status_1(tmp_path, gap, no_stray_children):
    results = tmp_path / "results.sqlite3"
    held = tmp_path / "never-released"
    env = {
        "DJANGO_SETTINGS_MODULE": "tests.settings_faults",
        "POOLBENCH_TEST_RESULTS": str(results),
        "POOLBENCH_HOLD_IMPORT": str(held),
    }
    with scratch_database(f"poolbench_{SUFFIX}_burst") as name:
        run = LiveManage(
            "poolbench", "--database", "target", "--sizes", "2,4", *SHORT,
            env={**env, "POOLBENCH_TEST_TARGET_URL": pg_url(name)}, tmpdir=tmp_path,
        )  # fmt: skip
        until(lambda: (tmp_path / f"{held.name}.held").exists(), run, "the server was never held")
        run.send(signal.SIGINT)
        time.sleep(gap)  # the burst's spacing is what the test varies, not a wait for a phase
        run.send(signal.SIGINT)
        code = run.finish()
    assert code == 1, run.stdout + run.stderr
    assert (
        run.err[-1]
        == "CommandError: Interrupted: sweep #1 is marked interrupted; its finished trials are kept."
    )
    assert "Traceback" not in run.stderr, run.stderr
    assert run.survivors() == []


@pytest.mark.postgres
@pytest.mark.slow
def test_two_first_runs_on_one_fresh_sqlite_file(tmp_path, no_stray_children):
    """Both see no tables and create them at once: neither may call the other's tables unwritable."""
    results = tmp_path / "results.sqlite3"
    env = {"DJANGO_SETTINGS_MODULE": "tests.settings_faults", "POOLBENCH_TEST_RESULTS": str(results)}
    with scratch_database(f"poolbench_{SUFFIX}_race") as name:
        env["POOLBENCH_TEST_TARGET_URL"] = pg_url(name)
        migrated = run_manage("migrate", "poolbench", "--database", "target", "-v", "0", env=env)
        assert migrated.returncode == 0, migrated.stderr
        runs = [
            LiveManage("poolbench", "--database", "target", "--sizes", "2", *SHORT, env=env, tmpdir=tmp_path)
            for _ in range(2)
        ]
        codes = [run.finish() for run in runs]
    # Both usually find no tables and create them at once (the race); at least the first one does.
    assert any("Creating poolbench's tables" in run.stdout for run in runs), [run.stdout for run in runs]
    for run in runs:
        assert "Give its user INSERT and UPDATE rights" not in run.stderr, run.stderr
        assert "Traceback" not in run.stderr, run.stderr
    assert codes == [0, 0], [run.stderr for run in runs]
    with sqlite3.connect(results) as db:
        assert db.execute("SELECT count(*), min(status), max(status) FROM poolbench_sweep").fetchone() == (
            2,
            "done",
            "done",
        )
