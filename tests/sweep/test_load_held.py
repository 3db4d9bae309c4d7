"""Load held (issue 8): 200 users against a pool of 2 with a short pool timeout. The sweep
completes, stores the failures with their messages, and leaves no connection of its own."""

from __future__ import annotations

import io
import time

import pytest
from django.core.management import call_command
from django.db import connections

from poolbench.models import Probe, Sweep, Trial
from tests.conftest import descendants
from tests.live import own_children_left, pg_admin

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def own_connections(dbname: str) -> int:
    with pg_admin() as admin:
        return admin.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name LIKE 'poolbench-trial-%%' AND datname = %s",
            [dbname],
        ).fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_200_users_against_a_pool_of_2():
    dbname = connections["default"].settings_dict["NAME"]
    # The probe's delay is evaluated per row: make sure the migration's row survived earlier
    # transactional tests (their flush empties every table).
    if not Probe.objects.exists():
        Probe.objects.create(testcol="test")
    before = descendants()
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "poolbench", "--sizes", "2", "--pool-timeout", "0.5", "--query-delay-ms", "100",
        "--users", "200", "--workers", "1", "--threads", "64", "--duration", "3", "--warmup", "1",
        stdout=out, stderr=err,
    )  # fmt: skip
    sweep = Sweep.objects.get()
    trial = sweep.trials.get()
    assert sweep.status == Sweep.Status.DONE and trial.status == Trial.Status.OK
    # 64 threads queue for 2 connections each held 100 ms: most wait far longer than 0.5 s.
    seen = (trial.requests, trial.failures, trial.rps, trial.latency_p50_ms, trial.pool_stats, trial.notes)
    assert 0 < trial.failures < trial.requests, seen
    timeouts = [
        e for e in trial.errors if "PoolTimeout: couldn't get a connection after 0.50 sec" in e["message"]
    ]
    assert timeouts, trial.errors
    assert timeouts[0]["message"].startswith("HTTP 503: PoolTimeout: ")
    assert sum(e["count"] for e in trial.errors) == trial.failures
    assert trial.pool_stats["total"]["pool_max"] == 2
    assert trial.pool_stats["total"].get("requests_errors", 0) > 0  # psycopg_pool counted them too
    assert 1 <= trial.db_stats["peak_connections"] <= 2
    # The failures are in the printed summary, with their message.
    assert "x HTTP 503: PoolTimeout: couldn't get a connection after 0.50 sec" in out.getvalue()
    # Nothing of the trial is left: no process, and no connection on the database.
    assert own_children_left(before) == []
    deadline = time.monotonic() + 5
    while own_connections(dbname) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert own_connections(dbname) == 0
