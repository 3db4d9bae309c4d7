"""poolbench's settings: one dict, ``settings.POOLBENCH``, merged over ``DEFAULTS``."""

from __future__ import annotations

from functools import cache
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

DEFAULTS: dict[str, Any] = {
    # Pool sizes swept when --sizes is not given.
    "SIZES": [5, 10, 16, 200],
    # gunicorn gthread server for each trial. None = what the site states for its own gunicorn
    # (GUNICORN_CMD_ARGS, gunicorn.conf.py, WEB_CONCURRENCY), else the measured default: one worker per
    # core (at most 4) x 32 threads (sweep/defaults.py; docs/scale.md#default-server-settings says why).
    "WORKERS": None,
    "THREADS": None,
    # Locust load: closed loop, users with no think time; twice the threads keeps every thread busy.
    "USERS": 64,
    "SPAWN_RATE": 0,  # 0 = all users at once
    # Five passes of 5 s (+2 s warm-up): the default sweep of four sizes in under about three minutes,
    # and four degrees of freedom for the intervals (docs/reading-the-numbers.md#the-recommendation).
    "DURATION": 5.0,  # seconds measured per trial
    "WARMUP": 2.0,  # seconds run before measuring, excluded from the statistics
    "POOL_MIN": None,  # None = psycopg_pool's default (4), capped at the size
    "POOL_TIMEOUT": 10.0,  # seconds a request may wait for a pooled connection
    "MAX_OVERFLOW": 0,  # QueuePool connections beyond the size
    "CONN_MAX_AGE": 600,  # CONN_MAX_AGE of --mode persistent
    "QUERY_DELAY_MS": 0,  # the probe holds its connection this long in the query
    "PROBE_CPU_MS": 0,  # the probe also runs this much Python CPU per request
    "PROBE_DB_MS": 0,  # the probe's query keeps the database's CPU busy this long
    "REPEAT": 5,  # runs of each configuration, interleaved, each pass in a fresh random order
    # Percent of the best throughput a recommended size may lose.
    "TOLERANCE": 5,
    # Effective spindles of the database host, for the formula's starting size (0: a cached data set).
    "SPINDLES": 0,
    "BIND": "127.0.0.1",  # the trial server listens here only
    "SERVER_START_TIMEOUT": 30.0,
    # Fork each trial's gunicorn from a process that imported gunicorn and Django once
    # (poolbench/forkserver.py) instead of starting a new interpreter per trial: saves 1-4 s per trial on
    # a busy 2-core machine. False = `python -m gunicorn` per trial.
    "FORK_SERVER": True,
    "LOCUSTFILE": None,  # None = poolbench's own probe scenario
    "LOCUST_PROCESSES": 1,  # Locust --processes: load generator processes on this machine
    "WORKERS_TIMEOUT": 60.0,  # seconds a Locust master waits for --expect-workers before giving up
    # Create poolbench's tables on the target when missing (the demo project turns this on).
    "MIGRATE": False,
    # Benchmark an embedded PostgreSQL (pgserver) instead of the alias's own database.
    "EMBEDDED": False,
    "EMBEDDED_MAX_CONNECTIONS": 1000,
    # Connections kept free for admin tools when checking a configuration against max_connections.
    "RESERVE_CONNECTIONS": 5,
}


def default_workers() -> int:
    """WORKERS=None and the site states nothing: one worker per core, at most 4 (sweep/defaults.py)."""
    from poolbench.sweep.defaults import measured_workers

    return measured_workers()


@cache
def get_config() -> dict[str, Any]:
    from django.conf import settings

    user = getattr(settings, "POOLBENCH", {}) or {}
    unknown = sorted(set(user) - set(DEFAULTS))
    if unknown:
        raise ImproperlyConfigured(
            f"Unknown POOLBENCH setting(s): {', '.join(unknown)}. Known: {', '.join(sorted(DEFAULTS))}."
        )
    return {**DEFAULTS, **user}


@receiver(setting_changed)
def _reset_config(*, setting: str, **kwargs: Any) -> None:
    if setting == "POOLBENCH":
        get_config.cache_clear()
