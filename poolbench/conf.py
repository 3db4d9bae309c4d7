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
    # gunicorn gthread server for each trial. Chosen from measurements on a 2-core machine
    # (benchmarks/README.md): enough threads that the pool, not the server, is what limits.
    "WORKERS": 2,
    "THREADS": 32,
    # Locust load: closed loop, users with no think time.
    "USERS": 64,
    "SPAWN_RATE": 0,  # 0 = all users at once
    "DURATION": 10.0,  # seconds measured per trial
    "WARMUP": 3.0,  # seconds run before measuring, excluded from the statistics
    "POOL_MIN": None,  # None = psycopg_pool's default (4), capped at the size
    "POOL_TIMEOUT": 10.0,  # seconds a request may wait for a pooled connection
    "BIND": "127.0.0.1",  # the trial server listens here only
    "SERVER_START_TIMEOUT": 30.0,
    "LOCUSTFILE": None,  # None = poolbench's own probe scenario
    # Create poolbench's tables on the target when missing (the demo project turns this on).
    "MIGRATE": False,
    # Benchmark an embedded PostgreSQL (pgserver) instead of the alias's own database.
    "EMBEDDED": False,
    "EMBEDDED_MAX_CONNECTIONS": 1000,
    # Connections kept free for admin tools when checking a configuration against max_connections.
    "RESERVE_CONNECTIONS": 5,
}


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
