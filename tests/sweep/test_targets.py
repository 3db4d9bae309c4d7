"""Connections poolbench opens itself work in sites whose connection_created receivers look their
connection up by alias (django.contrib.postgres does, and so do sites' own), and are closed after use."""

from __future__ import annotations

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connections
from django.db.backends.signals import connection_created

from poolbench.measure.samplers import DatabaseConnections
from poolbench.models import Sweep
from poolbench.sweep.targets import HARNESS_ALIAS, TargetError, resolve

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ADMIN_DSN = "host=127.0.0.1 port=5432 user=root dbname=postgres"


def _backend_alive(pid: int) -> bool:
    with psycopg.connect(ADMIN_DSN) as conn:
        return bool(conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()[0])


@pytest.fixture
def receiver():
    """A receiver like many sites have: ``connections[alias]``, then a statement on it."""
    seen: list[tuple[str, bool, int]] = []

    def on_connect(sender, connection, **kwargs):
        looked_up = connections[connection.alias]
        with looked_up.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            seen.append((connection.alias, looked_up is connection, cur.fetchone()[0]))

    connection_created.connect(on_connect)
    yield seen
    connection_created.disconnect(on_connect)


def broken_receiver(sender, connection, **kwargs):
    raise RuntimeError("the hstore extension is missing")


def test_contrib_postgres_is_installed_in_the_test_site():
    from django.apps import apps

    assert apps.is_installed("django.contrib.postgres")


def test_harness_connection_is_the_one_receivers_find_and_is_closed(receiver):
    target = resolve("default", embedded=False)
    target.inspect()
    assert target.max_connections and target.version
    [(alias, same, pid)] = receiver
    assert alias == HARNESS_ALIAS and same  # no second connection was opened by the receiver
    assert not _backend_alive(pid)


def test_sampler_thread_connection_works_with_receivers(receiver):
    target = resolve("default", embedded=False)
    sampler = DatabaseConnections(target.harness_connection, "postgresql", application_name="nobody-here")
    sampler.start(wait_setup=True)
    sampler.stop()
    [(alias, same, pid)] = receiver
    assert alias == HARNESS_ALIAS and same
    assert sampler.result()["peak_connections"] == 0
    assert not _backend_alive(pid)


def test_a_failing_receiver_is_named_not_the_server():
    target = resolve("default", embedded=False)
    connection_created.connect(broken_receiver)
    try:
        with pytest.raises(TargetError) as info:
            target.inspect()
    finally:
        connection_created.disconnect(broken_receiver)
    assert str(info.value) == (
        "connected to the database of alias 'default' (postgresql://root@127.0.0.1:5432/test_poolbench_"
        f"{connections['default'].settings_dict['NAME'].rsplit('_', 1)[-1]}), but then the site's "
        "connection_created receiver tests.sweep.test_targets.broken_receiver raised RuntimeError: the hstore "
        "extension is missing. The database is up: fix that code or the settings it reads."
    )


def test_a_failing_receiver_on_the_results_database_is_named():
    connections["default"].close()
    connection_created.connect(broken_receiver)
    try:
        with pytest.raises(CommandError) as info:
            call_command("poolbench", "--sizes", "2", "--duration", "1")
    finally:
        connection_created.disconnect(broken_receiver)
    message = str(info.value)
    assert message.startswith(
        "connected to the results database 'default' (postgresql://root@127.0.0.1:5432/"
    )
    assert message.endswith(
        "but then the site's connection_created receiver tests.sweep.test_targets.broken_receiver raised "
        "RuntimeError: the hstore extension is missing. The database is up: fix that code or the settings it reads"
    )
    assert "Start the server" not in message
    assert not Sweep.objects.exists()
