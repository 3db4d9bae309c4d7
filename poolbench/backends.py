"""Which database backends poolbench can pool, and how a trial's DATABASES entry is built."""

from __future__ import annotations

import copy
import importlib.util
from typing import Any

POOLABLE = ("postgresql", "mysql")

# The connection modes a trial can use, and the vendors that support each.
MODES: dict[str, tuple[str, ...]] = {
    "pool": ("postgresql",),  # Django's native psycopg pool
    "queuepool": ("postgresql", "mysql"),  # SQLAlchemy QueuePool through django-db-connection-pool
    "persistent": ("postgresql", "mysql"),  # CONN_MAX_AGE > 0: one connection per thread
    "none": ("postgresql", "mysql"),  # CONN_MAX_AGE = 0: a connection per request
}
POOLED_MODES = ("pool", "queuepool")

_QUEUEPOOL_ENGINES = {
    "postgresql": "dj_db_conn_pool.backends.postgresql",
    "mysql": "dj_db_conn_pool.backends.mysql",
}


# The package each pooled mode imports in the trial server, and how to install it.
POOL_PACKAGES: dict[str, tuple[str, str, str]] = {
    # mode: (module, what it is, the fix)
    "pool": ("psycopg_pool", "the psycopg pool package (psycopg_pool)", "pip install 'psycopg[pool]'"),
    "queuepool": (
        "dj_db_conn_pool",
        "django-db-connection-pool (dj_db_conn_pool)",
        "pip install 'poolbench[mysql]' (or pip install django-db-connection-pool)",
    ),
}


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (a module set to None in sys.modules counts as missing)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_pool_package(vendor: str, modes: list[str]) -> str | None:
    """The problem and its fix when a pooled mode's package is not installed, else None."""
    for mode in modes:
        if mode in POOL_PACKAGES:
            module, what, fix = POOL_PACKAGES[mode]
            if not installed(module):
                return (
                    f"--mode {mode} on {label(vendor)} needs {what}, which is not installed; "
                    f"{fix}, or choose another --mode"
                )
    return None


def vendor_of(engine: str) -> str:
    """The vendor name for an ENGINE path, including pool wrappers such as dj_db_conn_pool's."""
    engine = engine.lower()
    if "postgres" in engine or "psycopg" in engine:
        return "postgresql"
    if "mysql" in engine:
        return "mysql"
    if "sqlite" in engine:
        return "sqlite"
    if "oracle" in engine:
        return "oracle"
    return engine.rsplit(".", 1)[-1] or "unknown"


def default_mode(vendor: str) -> str:
    return "pool" if vendor == "postgresql" else "queuepool"


def base_engine(vendor: str) -> str:
    return {"postgresql": "django.db.backends.postgresql", "mysql": "django.db.backends.mysql"}[vendor]


# PostgreSQL connections of a trial server carry this application_name (plus a per-trial suffix), so
# that the harness counts them, and only them, in pg_stat_activity.
APPLICATION_NAME = "poolbench-trial"


def config_label(
    mode: str, size: int | None, max_overflow: int | None = None, conn_max_age: int | None = None
) -> str:
    """How a trial's connection set-up is shown everywhere: 'pool 8', 'queuepool 5+10', 'no pool (...)'."""
    if mode == "pool":
        return f"pool {size}"
    if mode == "queuepool":
        return f"queuepool {size}+{max_overflow or 0}"
    if mode == "persistent":
        return f"persistent (CONN_MAX_AGE={conn_max_age})"
    if mode == "none":
        return "no pool (CONN_MAX_AGE=0)"  # mode none
    return mode


def trial_database(
    base: dict[str, Any], vendor: str, spec: Any, application_name: str = APPLICATION_NAME
) -> dict[str, Any]:
    """The DATABASES entry for one trial: the alias's own settings with this trial's connection mode.

    ``spec`` is a :class:`poolbench.sweep.plan.TrialSpec`; ``application_name`` tags the trial's PostgreSQL
    connections.
    """
    db = copy.deepcopy(base)
    options = dict(db.get("OPTIONS") or {})
    options.pop("pool", None)
    db.pop("POOL_OPTIONS", None)
    db["ENGINE"] = base_engine(vendor)
    if spec.mode == "pool":
        pool: dict[str, Any] = {"max_size": spec.size, "timeout": spec.pool_timeout}
        pool["min_size"] = spec.pool_min if spec.pool_min is not None else min(4, spec.size)
        options["pool"] = pool
        db["CONN_MAX_AGE"] = 0
    elif spec.mode == "queuepool":
        db["ENGINE"] = _QUEUEPOOL_ENGINES[vendor]
        db["POOL_OPTIONS"] = {
            "POOL_SIZE": spec.size,
            "MAX_OVERFLOW": spec.max_overflow or 0,
            "TIMEOUT": spec.pool_timeout,
            # Keep connections for the whole trial and add no ping round trip: the pool's own cost only.
            "RECYCLE": -1,
            "PRE_PING": False,
        }
        db["CONN_MAX_AGE"] = 0
    elif spec.mode == "persistent":
        db["CONN_MAX_AGE"] = spec.conn_max_age  # the plan gives every persistent trial its age
    else:
        db["CONN_MAX_AGE"] = 0
    if vendor == "postgresql":
        # Lets the harness count this trial's connections in pg_stat_activity.
        options["application_name"] = application_name
    db["OPTIONS"] = options
    return db


def label(vendor: str) -> str:
    return {"postgresql": "PostgreSQL", "mysql": "MySQL/MariaDB", "sqlite": "SQLite"}.get(vendor, vendor)
