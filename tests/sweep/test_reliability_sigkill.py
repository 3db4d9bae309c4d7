"""SIGKILL of the command (issue 16, item 8): nothing of it may keep running, and nothing of it may stay
on disk after the next start. The README's default run (embedded PostgreSQL, results in SQLite), with
trial 1's server held at import by the test hook (never released), so the kill certainly comes while a
trial runs: Locust, the fork server, the trial server and the embedded PostgreSQL all exist then."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from poolbench.sweep import watchdog
from tests.conftest import run_manage, stray_processes
from tests.live import LiveManage, processes_mentioning

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SHORT = ["--duration", "2", "--warmup", "0.5", "--users", "4", "--workers", "1", "--threads", "4"]


def held_sweep(tmp_path) -> LiveManage:
    held = tmp_path / "never-released"
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'results.sqlite3'}", "POOLBENCH_HOLD_IMPORT": str(held)}
    run = LiveManage("poolbench", "--sizes", "2", *SHORT, env=env, tmpdir=tmp_path)
    until(lambda: (tmp_path / f"{held.name}.held").exists(), run, "never held", out=run)
    return run


def until(condition, run: LiveManage | None, what: str, timeout: float = 60, out=None) -> None:
    """Poll for an outcome (the phase it depends on is held by the hook, not timed)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if run is not None and run.proc.poll() is None:
            run.children()
        assert time.monotonic() < deadline, what + (f":\n{out.stdout}\n{out.stderr}" if out else "")
        time.sleep(0.05)


def ours_on_disk(tmp_path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("poolbench-"))


def the_command_is_running(run: LiveManage, tmp_path) -> dict[str, list[psutil.Process]]:
    """The command's children by kind, and its embedded PostgreSQL (not a child: pg_ctl daemonizes it)."""
    kids = run.children()
    kinds = {
        "locust": [p for p in kids if "locust" in " ".join(p.cmdline())],
        "forkserver": [p for p in kids if "poolbench.server.forkserver" in p.cmdline()],
        "watchdog": [p for p in kids if watchdog.MODULE in p.cmdline()],
    }
    assert all(kinds.values()), kinds
    assert len(kinds["forkserver"]) >= 3, "the fork server, the trial server's arbiter and its worker"
    postgres = processes_mentioning(str(tmp_path / "poolbench-pg-"))
    assert postgres, "the embedded PostgreSQL is not running"
    assert [n.split("-")[:3] for n in ours_on_disk(tmp_path)] == [
        ["poolbench", "fork", str(run.proc.pid)],
        ["poolbench", "pg", str(run.proc.pid)],
        ["poolbench", "trial", str(run.proc.pid)],
    ]
    return kinds


def test_sigkill_of_the_command_leaves_nothing_running_or_on_disk(tmp_path, no_stray_children):
    run = held_sweep(tmp_path)
    the_command_is_running(run, tmp_path)
    run.proc.send_signal(signal.SIGKILL)
    assert run.finish() == -signal.SIGKILL
    # The watchdog saw its pipe close: the groups killed, PostgreSQL stopped, the directories removed.
    until(lambda: run.survivors() == [], None, f"left running: {run.survivors()}")
    until(lambda: processes_mentioning(str(tmp_path)) == [], None, "the embedded PostgreSQL was left")
    until(lambda: ours_on_disk(tmp_path) == [], None, f"left on disk: {ours_on_disk(tmp_path)}")
    assert stray_processes(tag=no_stray_children) == []


def test_sigkill_of_the_command_and_its_watchdog_is_cleaned_up_by_the_next_start(tmp_path, no_stray_children):
    """Worse than kill -9 PID: the watchdog is killed at the same moment (kill -9 of the whole tree).
    The children die with their parents (PR_SET_PDEATHSIG); the embedded PostgreSQL, which only the
    watchdog would have stopped, and the directories are removed by the next start."""
    run = held_sweep(tmp_path)
    kinds = the_command_is_running(run, tmp_path)
    kinds["watchdog"][0].send_signal(signal.SIGKILL)
    run.proc.send_signal(signal.SIGKILL)
    run.finish()

    def survivors():  # but the embedded PostgreSQL (pg_ctl daemonized it: it has no parent of ours)
        pg = {int(line.split(":")[0]) for line in processes_mentioning(str(tmp_path / "poolbench-pg-"))}
        kin = {p.pid for pid in pg for p in psutil.Process(pid).children(recursive=True)}
        return [s for s in run.survivors() if int(s.split(":")[0]) not in pg | kin]

    until(lambda: survivors() == [], None, f"left running: {survivors()}")
    assert processes_mentioning(str(tmp_path / "poolbench-pg-")), "nothing was left for the next start"
    left = ours_on_disk(tmp_path)
    assert len(left) == 3, left
    # The next start (refused here, after its clean-up: the embedded server allows 1000 connections).
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'results.sqlite3'}", "TMPDIR": str(tmp_path)}
    result = run_manage("poolbench", "--sizes", "2000", "--workers", "1", env=env, timeout=120)
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == (
        "Removed what sweeps killed earlier left behind (their embedded PostgreSQL stopped): "
        + ", ".join(left)
        + "."
    ), result.stderr
    assert "pool 2000 may open 2000 connections" in result.stderr
    assert processes_mentioning(str(tmp_path)) == []
    assert ours_on_disk(tmp_path) == []
    assert stray_processes(tag=no_stray_children) == []


def test_the_next_start_leaves_live_and_foreign_directories_alone(tmp_path):
    alive = tmp_path / f"poolbench-trial-{os.getpid()}-abc"
    other = tmp_path / "poolbench-trial-xyz"  # no pid in its name: another version's, left alone
    dead_pid = psutil.Popen(["true"])
    dead_pid.wait()
    dead = tmp_path / f"poolbench-trial-{dead_pid.pid}-abc"
    for path in (alive, other, dead):
        path.mkdir()
        (path / "trial.json").write_text("{}")
    assert watchdog.clean_leftovers(str(tmp_path)) == [dead.name]
    assert ours_on_disk(tmp_path) == sorted([alive.name, other.name])
