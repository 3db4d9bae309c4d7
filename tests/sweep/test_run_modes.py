"""Issue 3 end to end: MySQL/MariaDB through a real QueuePool, the four connection modes side by side,
what the database saw, pool exhaustion as the pool's own message, and the max_connections preflight.

Real MariaDB (127.0.0.1:3306) and PostgreSQL (127.0.0.1:5432), real gunicorn and Locust: no mocks.
Trials are short (1-2 s measured); assertions are bounds and ratios, never exact figures.
"""

from __future__ import annotations

import io
import json
import os
import re

import MySQLdb
import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from poolbench.models import Sweep, Trial
from tests.conftest import descendants, run_manage

pytestmark = [pytest.mark.slow]

SUFFIX = os.environ.get("POOLBENCH_TEST_SUFFIX", "main")
MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root", "passwd": ""}
BOTH = ["default", "mysql"]
SHORT = ["--duration", "2", "--warmup", "1", "--workers", "1"]
# The side-by-side tests run 3-4 trials each: shorter still, since each trial also costs a server start.
SHORTER = ["--duration", "1.5", "--warmup", "0.5", "--workers", "1"]


def poolbench(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("poolbench", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def max_connections(alias: str) -> int:
    with connections[alias].cursor() as cur:
        cur.execute(
            "SELECT @@max_connections" if connections[alias].vendor == "mysql" else "SHOW max_connections"
        )
        return int(cur.fetchone()[0])


@pytest.fixture
def mysql_demo_db():
    """An empty utf8mb4 database on the MariaDB server for the demo project (results and target)."""
    name = f"poolbench_demo_{SUFFIX}"
    db = MySQLdb.connect(**MYSQL)
    try:
        with db.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        yield name
        with db.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        db.close()


@pytest.mark.mysql
def test_mysql_sweep_from_the_demo_project(mysql_demo_db, no_stray_children):
    """The issue's check: DATABASE_URL=mysql://... manage.py poolbench --sizes 2,8 on an empty database.

    The probe holds its connection 20 ms (SLEEP()), so the pool size is what limits: size 2 cannot pass
    2 / 0.020 s = 100 req/s (Little's law), and size 8 must do clearly better.
    """
    env = {"DATABASE_URL": f"mysql://root@127.0.0.1:3306/{mysql_demo_db}"}
    result = run_manage(
        "poolbench", "--sizes", "2,8", *SHORT, "--users", "16", "--threads", "16", "--query-delay-ms", "20",
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    out = result.stdout
    assert "Creating poolbench's tables in the results database 'default' (migrate)." in out
    assert "against MySQL/MariaDB " in out and f"mysql://root@127.0.0.1:3306/{mysql_demo_db}" in out
    rows = {}
    for size in (2, 8):
        row = re.search(
            rf"^\d+\s+queuepool {size}\+0\s+1x16\s+([\d,.]+)\s.*\s(\d+)\s+([\d.]+)\s+ok$", out, re.M
        )
        assert row, out
        rows[size] = (float(row.group(1).replace(",", "")), int(row.group(2)), float(row.group(3)))
        rps, peak, mean = rows[size]
        assert rps > 0
        assert 1 <= peak <= size and 0 < mean <= size
    assert rows[2][0] <= 100 * 1.05, (
        "size 2 with a 20 ms SLEEP() passed Little's law: the delay was not applied"
    )
    assert rows[8][0] > rows[2][0] * 1.5, rows

    # The demo project talks utf8mb4 to MySQL (mysqlclient's default through Django is 3-byte utf8).
    charset = run_manage(
        "shell", "-c", "from django.db import connection as c; c.ensure_connection(); "
        "print(c.connection.character_set_name())", env=env,
    )  # fmt: skip
    assert charset.stdout.strip().splitlines()[-1] == "utf8mb4", charset.stderr

    db = MySQLdb.connect(db=mysql_demo_db, charset="utf8mb4", **MYSQL)
    try:
        with db.cursor() as cur:
            cur.execute("SELECT id, status, vendor FROM poolbench_sweep")
            sweeps = cur.fetchall()
            cur.execute(
                "SELECT pool_size, mode, max_overflow, status, requests, rps, pool_stats, db_stats "
                "FROM poolbench_trial ORDER BY `index`"
            )
            trials = cur.fetchall()
    finally:
        db.close()

    assert len(sweeps) == 1 and sweeps[0][1:] == ("done", "mysql")
    assert [t[:4] for t in trials] == [(2, "queuepool", 0, "ok"), (8, "queuepool", 0, "ok")]
    for size, _, _, _, requests, _rps, pool_stats, db_stats in trials:
        pool, seen = json.loads(pool_stats), json.loads(db_stats)
        assert pool["settings"]["engine"] == "dj_db_conn_pool.backends.mysql"
        assert pool["settings"]["pool_options"]["POOL_SIZE"] == size
        # The QueuePool's own figures, from the worker's SQLAlchemy pool.
        assert pool["total"]["pool_size"] == size and pool["total"]["max_overflow"] == 0
        assert 1 <= pool["total"]["peak_checked_out"] <= size
        assert pool["total"]["connects"] <= size
        assert pool["total"]["checkouts"] >= requests > 0
        # What MariaDB saw: never more of the trial's connections than the pool allows.
        assert 1 <= seen["peak_connections"] <= size
        assert seen["peak_all_connections"] >= seen["peak_connections"]
        assert seen["max_used_connections"] >= seen["peak_connections"]


def _by_mode(sweep: Sweep) -> dict[str, Trial]:
    return {t.mode: t for t in sweep.trials.order_by("index")}


@pytest.mark.mysql
@pytest.mark.django_db(transaction=True, databases=BOTH)
def test_mysql_modes_side_by_side(no_stray_children):
    out, _ = poolbench(
        "--database", "mysql", "--mode", "queuepool,persistent,none", "--sizes", "4", "--max-overflow", "2",
        *SHORTER, "--users", "8", "--threads", "8",
    )  # fmt: skip
    sweep = Sweep.objects.get()
    assert sweep.vendor == "mysql" and sweep.status == Sweep.Status.DONE
    assert sweep.options["modes"] == ["none", "persistent", "queuepool"]
    trials = _by_mode(sweep)
    assert [t.mode for t in sweep.trials.order_by("index")] == ["queuepool", "persistent", "none"]
    for t in trials.values():
        assert t.status == Trial.Status.OK and t.requests > 0 and t.rps > 0 and t.failures == 0, t.error_text
    q, p, n = trials["queuepool"], trials["persistent"], trials["none"]
    # Each trial records its mode and the settings the server ran with.
    assert (q.pool_size, q.max_overflow, q.conn_max_age) == (4, 2, None)
    assert q.pool_stats["settings"]["engine"] == "dj_db_conn_pool.backends.mysql"
    assert q.pool_stats["settings"]["pool_options"]["MAX_OVERFLOW"] == 2
    assert (p.pool_size, p.conn_max_age) == (None, 600)
    assert p.pool_stats["settings"] == {"engine": "django.db.backends.mysql", "conn_max_age": 600}
    assert (n.pool_size, n.conn_max_age) == (None, 0)
    assert n.pool_stats["settings"] == {"engine": "django.db.backends.mysql", "conn_max_age": 0}
    # What the database saw: the QueuePool stays within size + overflow; the others within one per thread.
    assert 1 <= q.db_stats["peak_connections"] <= 4 + 2
    assert q.pool_stats["total"]["peak_open"] <= 6
    assert 1 <= p.db_stats["peak_connections"] <= 8
    assert n.db_stats["peak_connections"] <= 8
    # A new connection per request: MariaDB's Connections counter moves at least with the requests (it
    # counts the whole server's connections, other clients' too, so only a lower bound can be asserted).
    assert n.db_stats["new_connections"] >= n.requests
    # The table names the mode of each row.
    assert re.search(r"^1\s+queuepool 4\+2\s+1x8\s", out, re.M), out
    assert re.search(r"^2\s+persistent \(CONN_MAX_AGE=600\)\s+1x8\s", out, re.M), out
    assert re.search(r"^3\s+no pool \(CONN_MAX_AGE=0\)\s+1x8\s", out, re.M), out
    assert "db peak" in out and "db mean" in out
    assert "Best throughput (queuepool):" in out and "Best throughput (none):" in out


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_postgresql_modes_side_by_side(no_stray_children):
    out, _ = poolbench(
        "--mode", "pool,queuepool,persistent,none", "--sizes", "4", *SHORTER,
        "--users", "8", "--threads", "8",
    )  # fmt: skip
    sweep = Sweep.objects.get()
    trials = _by_mode(sweep)
    assert list(trials) == ["pool", "queuepool", "persistent", "none"]
    for t in trials.values():
        assert t.status == Trial.Status.OK and t.requests > 0 and t.rps > 0 and t.failures == 0, t.error_text
        # Counted by this trial's own application_name in pg_stat_activity.
        assert t.db_stats["counted"] == "pg_stat_activity, application_name"
        assert t.db_stats["peak_connections"] <= t.workers * t.threads
    pool, qp, pers, none = (trials[m] for m in ("pool", "queuepool", "persistent", "none"))
    assert pool.pool_stats["settings"]["pool"]["max_size"] == 4
    assert pool.pool_stats["settings"]["application_name"] == f"poolbench-trial-{sweep.pk}-1"
    assert qp.pool_stats["settings"]["engine"] == "dj_db_conn_pool.backends.postgresql"
    # Pooled modes: the server never saw more than workers x (pool + overflow).
    for t in (pool, qp):
        assert 1 <= t.db_stats["peak_connections"] <= t.max_db_connections == 4
    assert pool.pool_stats["total"]["pool_max"] == 4
    assert qp.pool_stats["total"]["peak_checked_out"] <= 4
    # pg_stat_database.sessions: a connection per request without a pool, a handful with one.
    assert none.db_stats["new_connections"] >= none.requests * 0.9
    assert pool.db_stats["new_connections"] <= 4
    assert pers.db_stats["new_connections"] <= 8
    assert re.search(r"^1\s+pool 4\s+1x8\s", out, re.M), out
    assert re.search(r"^2\s+queuepool 4\+0\s+1x8\s", out, re.M), out
    rec = sweep.by_mode()
    assert rec["pool"]["recommended_size"] == 4 and rec["queuepool"]["recommended_size"] == 4
    assert sweep.recommendation.startswith("pool: ") and " queuepool: " in sweep.recommendation


@pytest.mark.mysql
@pytest.mark.django_db(transaction=True, databases=BOTH)
def test_queuepool_exhaustion_is_recorded_as_the_queuepool_message(no_stray_children):
    """Pool 5 + overflow 10, timeout 1 s, 100 users: 15 connections held 200 ms each serve 75 req/s,
    so the 85 waiting requests wait over a second and the QueuePool gives up."""
    out, err = poolbench(
        "--database", "mysql", "--sizes", "5", "--max-overflow", "10", "--pool-timeout", "1",
        "--users", "100", "--threads", "100", "--query-delay-ms", "200", *SHORT,
    )  # fmt: skip
    trial = Sweep.objects.get().trials.get()
    assert trial.status == Trial.Status.OK and trial.failures > 0
    message = "QueuePool limit of size 5 overflow 10 reached, connection timed out, timeout 1.00"
    grouped = [e for e in trial.errors if message in e["message"]]
    assert len(grouped) == 1, trial.errors
    assert grouped[0]["message"].startswith(f"HTTP 503: TimeoutError: {message}")
    # SQLAlchemy's own pointer stays whole (only the trial server's address is taken out of messages).
    assert "(Background on this error at: https://sqlalche.me/e/" in grouped[0]["message"]
    assert grouped[0]["count"] > 0 and grouped[0]["names"] == ["/__poolbench__/probe"]
    assert sum(e["count"] for e in trial.errors) == trial.failures
    # The worker counted its pool's timeouts; the server never saw more than 5 + 10 of its connections.
    assert trial.pool_stats["total"]["timeouts"] >= grouped[0]["count"]
    assert trial.pool_stats["total"]["peak_open"] == 15
    assert trial.db_stats["peak_connections"] <= 15
    assert f"x HTTP 503: TimeoutError: {message}" in out


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_psycopg_pool_timeout_is_recorded_as_pooltimeout(no_stray_children):
    """Native pool of 2, 100 ms per query (20 req/s), 32 users, 300 ms timeout: most requests time out."""
    poolbench(
        "--sizes", "2", "--pool-timeout", "300ms", "--users", "32", "--threads", "32",
        "--query-delay-ms", "100", *SHORT,
    )  # fmt: skip
    trial = Sweep.objects.get().trials.get()
    assert trial.status == Trial.Status.OK and trial.failures > 0
    top = trial.errors[0]
    assert top["message"] == "HTTP 503: PoolTimeout: couldn't get a connection after 0.30 sec"
    assert sum(e["count"] for e in trial.errors) == trial.failures
    assert trial.pool_stats["total"]["requests_errors"] >= top["count"]
    assert trial.db_stats["peak_connections"] <= 2


@pytest.mark.parametrize(
    ("alias", "label", "formula"),
    [
        ("mysql", "queuepool 400+0", "workers x (pool size + overflow) = 1 x (400 + 0)"),
        ("default", "pool 400", "workers x (pool size + overflow) = 1 x (400 + 0)"),
    ],
)
@pytest.mark.django_db(databases=BOTH)
def test_preflight_refuses_a_size_over_max_connections(alias, label, formula):
    limit = max_connections(alias)
    assert limit < 395, "the test needs a server whose max_connections is below 395"
    before = descendants()
    with pytest.raises(CommandError) as info:
        poolbench("--database", alias, "--sizes", "4,400", "--workers", "1")
    assert str(info.value) == (
        f"{label} may open 400 connections ({formula}), but the server's max_connections is {limit} "
        f"and 5 are kept in reserve ({limit - 5} usable). Use smaller --sizes, --max-overflow or --workers, "
        "raise max_connections on the server, or pass --allow-over-max to run it anyway "
        "(recorded on the sweep and its trials)"
    )
    assert not Sweep.objects.exists() and not Trial.objects.exists()
    assert descendants() <= before


@pytest.mark.mysql
@pytest.mark.django_db(transaction=True, databases=BOTH)
def test_allow_over_max_runs_and_records_it(no_stray_children):
    limit = max_connections("mysql")
    out, err = poolbench(
        "--database", "mysql", "--sizes", "400", "--allow-over-max", "--users", "4", "--threads", "4",
        "--duration", "1", "--warmup", "0", "--workers", "1",
    )  # fmt: skip
    assert "Running anyway (--allow-over-max): queuepool 400+0 may open 400 connections" in err
    sweep = Sweep.objects.get()
    assert sweep.options["allow_over_max"] is True
    assert sweep.options["over_max_connections"] == {
        "trials": [1], "max_connections": limit, "reserve": 5, "largest": 400,
    }  # fmt: skip
    trial = sweep.trials.get()
    assert trial.status == Trial.Status.OK and trial.requests > 0
    assert trial.notes == [
        f"ran over the server's max_connections (--allow-over-max): may open 400 connections, "
        f"max_connections is {limit} with 5 in reserve"
    ]
    # Four threads cannot hold more than four connections, whatever the pool allows.
    assert trial.db_stats["peak_connections"] <= 4
    assert f"Ran over max_connections={limit} (--allow-over-max): trial(s) 1 may open up to 400" in out
