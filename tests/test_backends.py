"""The per-mode database settings of a trial (poolbench.backends)."""

from __future__ import annotations

from poolbench import backends
from poolbench.sweep.plan import build_plan


def test_trial_database_per_mode():
    base = {
        "ENGINE": "django.db.backends.mysql",
        "NAME": "x",
        "CONN_MAX_AGE": 60,
        "OPTIONS": {"charset": "utf8mb4"},
    }
    specs = {s.mode: s for s in build_plan(
        sizes=[5], modes=["queuepool", "persistent", "none"], workers=[1], threads=[4], max_overflow=10,
        pool_timeout=1.0, conn_max_age=30,
    ).specs}  # fmt: skip
    q = backends.trial_database(base, "mysql", specs["queuepool"])
    assert q["ENGINE"] == "dj_db_conn_pool.backends.mysql" and q["CONN_MAX_AGE"] == 0
    assert q["POOL_OPTIONS"] == {
        "POOL_SIZE": 5,
        "MAX_OVERFLOW": 10,
        "TIMEOUT": 1.0,
        "RECYCLE": -1,
        "PRE_PING": False,
    }
    assert q["OPTIONS"] == {"charset": "utf8mb4"}  # no application_name on MySQL
    p = backends.trial_database(base, "mysql", specs["persistent"])
    assert p["ENGINE"] == "django.db.backends.mysql" and p["CONN_MAX_AGE"] == 30 and "POOL_OPTIONS" not in p
    assert backends.trial_database(base, "mysql", specs["none"])["CONN_MAX_AGE"] == 0
    pg = {"ENGINE": "django.db.backends.postgresql", "NAME": "x", "OPTIONS": {"pool": True}}
    pool = build_plan(sizes=[3], modes=["pool"], workers=[1], threads=[4]).specs[0]
    entry = backends.trial_database(pg, "postgresql", pool, "poolbench-trial-7-1")
    assert entry["OPTIONS"] == {
        "pool": {"max_size": 3, "timeout": 10.0, "min_size": 3},
        "application_name": "poolbench-trial-7-1",
    }
