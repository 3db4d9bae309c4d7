"""The results database lost mid-sweep (issue 16, item 2), in the demo's DATABASE_URL mode where it is
also the database under test: the role loses LOGIN (and its backends are terminated), or its INSERT
and UPDATE rights are revoked, while trial 1's server is held at import by the test hook. The command
must end with one clear message, print the figures it has, write --json, leave no state directory
(trial.json holds the password) and no child, and exit non-zero, without a long hang."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.live import LiveManage, drop_role, pg_admin, pg_conninfo, scratch_database

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SUFFIX = os.environ.get("POOLBENCH_TEST_SUFFIX", "main")
SHORT = ["--duration", "2", "--warmup", "0.5", "--users", "4", "--workers", "1", "--threads", "4"]
PASSWORD = "Lost-Results-pw-7431"


def wait_for(condition, run: LiveManage, timeout: float = 90) -> None:
    """Poll for ``condition``; the phase itself is held by the hook, not timed."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert run.proc.poll() is None, f"exited early:\n{run.stdout}\n{run.stderr}"
        assert time.monotonic() < deadline, f"timed out:\n{run.stdout}\n{run.stderr}"
        run.children()
        time.sleep(0.05)


def no_login(admin, role: str, name: str) -> None:
    admin.execute(f'ALTER ROLE "{role}" NOLOGIN')
    admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s AND datname = %s",
        [role, name],
    )


def no_writes(admin, role: str, name: str) -> None:
    with pg_admin(name) as db:
        db.execute(f'REVOKE INSERT, UPDATE ON poolbench_sweep, poolbench_trial FROM "{role}"')
        db.execute(f'ALTER TABLE poolbench_sweep OWNER TO "{pg_conninfo()["user"]}"')
        db.execute(f'ALTER TABLE poolbench_trial OWNER TO "{pg_conninfo()["user"]}"')
        db.execute(f'GRANT SELECT ON poolbench_sweep, poolbench_trial TO "{role}"')


EXPECTED = {
    no_login: f'role "poolbench_{SUFFIX}_lost" is not permitted to log in',
    no_writes: "permission denied for table poolbench_trial",
}


@pytest.mark.parametrize("fault", [no_login, no_writes], ids=["nologin", "revoke"])
def test_losing_the_results_database_mid_sweep(fault, tmp_path, no_stray_children):
    role = f"poolbench_{SUFFIX}_lost"
    drop_role(role)
    with pg_admin() as admin:
        admin.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{PASSWORD}'")
    held, out = tmp_path / "release", tmp_path / "partial.json"
    try:
        with scratch_database(f"poolbench_{SUFFIX}_lost", owner=role) as name:
            info = pg_conninfo(name)
            env = {"DATABASE_URL": f"postgres://{role}:{PASSWORD}@{info['host']}:{info['port']}/{name}"}
            migrated = LiveManage("migrate", "-v", "0", env=env, tmpdir=tmp_path)
            assert migrated.finish() == 0, migrated.stderr
            run = LiveManage(
                "poolbench", "--sizes", "2,4,6", "--json", str(out), "--pool-timeout", "1", *SHORT,
                env={**env, "POOLBENCH_HOLD_IMPORT": str(held)}, tmpdir=tmp_path,
            )  # fmt: skip
            wait_for(lambda: (tmp_path / "release.held").exists(), run)
            with pg_admin() as admin:
                fault(admin, role, name)
            released = time.monotonic()
            held.touch()
            code = run.finish(timeout=120)
            took = time.monotonic() - released
            with pg_admin(name) as db:
                stored = db.execute("SELECT status, count(*) FROM poolbench_trial GROUP BY 1").fetchall()
    finally:
        drop_role(role)
    assert code == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    last = run.err[-1]
    assert last.startswith(
        "CommandError: cannot write results to the database 'default' "
        f"(postgresql://{role}@{info['host']}:{info['port']}/{name}) any more: "
    ), run.stderr
    assert EXPECTED[fault] in last
    assert last.endswith("and run the sweep again"), last
    assert [line for line in run.err if line.startswith("CommandError")] == [last]  # one message
    # The figures of the trial that ran are printed, and written to --json.
    assert "Sweep #1 on PostgreSQL" in run.stdout and "(error)" in run.stdout, run.stdout
    records = json.loads(out.read_text())
    assert [(r["sweep_id"], r["pool_size"]) for r in records] == [(1, 2)], records
    assert records[0]["requests"] > 0
    # Not a second trial: the sweep stopped at the first save that failed.
    assert "[2/3]" not in run.stdout
    assert stored == [("running", 1)]  # what the database had before the fault
    assert took < 2 + 0.5 + 15, f"the command took {took:.1f}s after the fault"
    # No state directory (trial.json holds the password), no child of the command left.
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("poolbench-"))
    assert left == [], left
    assert run.survivors() == []
    assert PASSWORD not in run.stdout + run.stderr + out.read_text()
