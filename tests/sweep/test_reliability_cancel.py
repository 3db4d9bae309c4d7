"""When a trial ends, its statements end too (issue 16, item 9): a --query-delay-ms 60000 trial of
one second leaves no backend of that trial sleeping in the database after the command, on
PostgreSQL (pg_terminate_backend by application_name) and MariaDB (KILL QUERY)."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from poolbench.models import Sweep

SLEEPING = {
    # The trial's own backends, by their application_name (sweep/trial.py application_name()).
    "default": (
        "SELECT pid, query FROM pg_stat_activity WHERE application_name LIKE %s AND query LIKE '%%pg_sleep%%'"
    ),
    # MariaDB cannot tag a connection: any connection to this test database still in SLEEP().
    "mysql": (
        "SELECT ID, INFO FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND ID <> CONNECTION_ID() "
        "AND INFO LIKE 'SELECT SLEEP(%%'"
    ),
}


@pytest.mark.postgres
@pytest.mark.mysql
@pytest.mark.django_db(transaction=True, databases=["default", "mysql"])
@pytest.mark.parametrize("alias", ["default", "mysql"])
def test_no_statement_of_a_trial_outlives_it(alias, no_stray_children):
    mode = ["--mode", "queuepool"] if alias == "mysql" else []
    try:
        call_command(
            "poolbench", "--database", alias, *mode, "--sizes", "2", "--query-delay-ms", "60000",
            "--duration", "1", "--warmup", "0", "--users", "2", "--workers", "1", "--threads", "2",
            stdout=io.StringIO(), stderr=io.StringIO(),
        )  # fmt: skip
    except CommandError as exc:  # every request took a minute: nothing succeeded in one second
        assert "failed" in str(exc)
    sweep = Sweep.objects.get()
    trial = sweep.trials.get()
    assert trial.finished_at is not None
    args = [f"poolbench-trial-{sweep.pk}-%"] if alias == "default" else []
    with connections[alias].cursor() as cur:
        cur.execute(SLEEPING[alias], args)
        assert list(cur.fetchall()) == []
