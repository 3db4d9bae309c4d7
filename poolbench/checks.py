"""System checks for what would make a sweep fail before it starts. Every hint names the fix."""

from __future__ import annotations

from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS

from poolbench import backends


@checks.register(checks.Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from poolbench.conf import get_config

    try:
        get_config()
    except ImproperlyConfigured as exc:
        return [
            checks.Error(str(exc), hint="Fix or remove the key in settings.POOLBENCH.", id="poolbench.E001")
        ]
    return []


@checks.register(checks.Tags.database)
def check_databases(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """E002/W002: psycopg pool missing; E003/W003: MySQL pool missing; W001: a backend with no pool."""
    from django.conf import settings

    from poolbench.conf import get_config

    messages: list[checks.CheckMessage] = []
    try:
        embedded = get_config()["EMBEDDED"]
    except ImproperlyConfigured:
        return messages
    for alias, cfg in settings.DATABASES.items():
        vendor = backends.vendor_of(cfg.get("ENGINE", ""))
        # The default alias is what a sweep benchmarks unless told otherwise: a missing pool package is
        # an error there. For another alias only `--database <alias>` needs it, so a warning does not
        # stop the site's own commands (migrate, runserver) over a database nobody benchmarks.
        level, kind = (checks.Error, "E") if alias == DEFAULT_DB_ALIAS else (checks.Warning, "W")
        if vendor == "postgresql" and not backends.installed("psycopg_pool"):
            messages.append(
                level(
                    f"Database '{alias}' is PostgreSQL but psycopg_pool (the psycopg pool package) is not "
                    "installed, so poolbench cannot run pooled trials on it.",
                    hint="pip install 'psycopg[pool]' (or reinstall poolbench, which requires it).",
                    id=f"poolbench.{kind}002",
                )
            )
        elif vendor == "mysql" and not backends.installed("dj_db_conn_pool"):
            messages.append(
                level(
                    f"Database '{alias}' is MySQL/MariaDB, which Django cannot pool by itself, and "
                    "django-db-connection-pool (dj_db_conn_pool) is not installed.",
                    hint="pip install 'poolbench[mysql]' (mysqlclient + django-db-connection-pool).",
                    id=f"poolbench.{kind}003",
                )
            )
        elif vendor not in backends.POOLABLE and not (alias == "default" and embedded):
            messages.append(
                checks.Warning(
                    f"Database '{alias}' uses {cfg.get('ENGINE')}, which poolbench cannot pool.",
                    hint="Benchmark a PostgreSQL or MySQL/MariaDB alias with --database, or set "
                    "POOLBENCH = {'EMBEDDED': True} (or pass --embedded) to benchmark an embedded "
                    "PostgreSQL.",
                    id="poolbench.W001",
                )
            )
    return messages
