"""The system checks (poolbench.checks): a missing pool package or an unpoolable alias is named, with the fix."""

from __future__ import annotations

import sys

import pytest
from django.test import override_settings

from poolbench import checks

pytestmark = pytest.mark.django_db


def _by_id(messages):
    return {m.id: m for m in messages}


def test_checks_all_clear_when_packages_are_installed():
    found = _by_id(checks.check_databases())
    assert set(found) == {"poolbench.W001"}  # only the SQLite alias 'lite' of the test settings
    assert (
        found["poolbench.W001"].msg
        == "Database 'lite' uses django.db.backends.sqlite3, which poolbench cannot pool."
    )
    assert "--database" in found["poolbench.W001"].hint and "EMBEDDED" in found["poolbench.W001"].hint


def test_check_psycopg_pool_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg_pool", None)
    found = _by_id(checks.check_databases())
    # 'default' (what a sweep benchmarks by default) is an error; 'unreachable', another PostgreSQL
    # alias, only a warning.
    error = found["poolbench.E002"]
    assert error.level == 40
    assert error.msg == (
        "Database 'default' is PostgreSQL but psycopg_pool (the psycopg pool package) is not installed, "
        "so poolbench cannot run pooled trials on it."
    )
    assert error.hint == "pip install 'psycopg[pool]' (or reinstall poolbench, which requires it)."
    assert found["poolbench.W002"].msg.startswith("Database 'unreachable' is PostgreSQL")
    assert "poolbench.E003" not in found and "poolbench.W003" not in found


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_check_mysql_pool_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "dj_db_conn_pool", None)
    found = _by_id(checks.check_databases())
    warning = found["poolbench.W003"]
    assert warning.msg == (
        "Database 'mysql' is MySQL/MariaDB, which Django cannot pool by itself, and "
        "django-db-connection-pool (dj_db_conn_pool) is not installed."
    )
    assert warning.hint == "pip install 'poolbench[mysql]' (mysqlclient + django-db-connection-pool)."
    mysql_default = {"default": {"ENGINE": "django.db.backends.mysql", "NAME": "x"}}
    with override_settings(DATABASES=mysql_default):
        assert _by_id(checks.check_databases())["poolbench.E003"].level == 40


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_check_unpoolable_default_alias():
    with override_settings(DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "x"}}):
        found = _by_id(checks.check_databases())
        assert found["poolbench.W001"].msg == (
            "Database 'default' uses django.db.backends.sqlite3, which poolbench cannot pool."
        )
        with override_settings(POOLBENCH={"EMBEDDED": True}):
            assert "poolbench.W001" not in _by_id(checks.check_databases())
