"""The pure parts of issue 3: labels, per-mode settings, pool statistics across workers, connection
figures over the measured window, and the error text of a pool timeout."""

from __future__ import annotations

import re

import psycopg_pool
import pytest
import sqlalchemy.exc
from django.db import utils

from poolbench import backends
from poolbench.measure import stats
from poolbench.measure.samplers import summarize_connections
from poolbench.server.wsgi import error_text, is_pool_timeout
from poolbench.sweep.plan import PlanError, build_plan, parse_modes


def test_labels_name_the_mode():
    plan = build_plan(
        sizes=[5],
        modes=["pool", "queuepool", "persistent", "none"],
        workers=[2],
        threads=[8],
        max_overflow=10,
    )
    assert [s.label for s in plan.specs] == [
        "pool 5",
        "queuepool 5+10",
        "persistent (CONN_MAX_AGE=600)",
        "no pool (CONN_MAX_AGE=0)",
    ]
    assert [s.max_db_connections for s in plan.specs] == [10, 30, 16, 16]


def test_parse_modes_per_vendor():
    assert parse_modes("pool,queuepool,none", "postgresql") == ["pool", "queuepool", "none"]
    assert parse_modes("queuepool, persistent", "mysql") == ["queuepool", "persistent"]
    with pytest.raises(PlanError, match=r"^--mode pool is not available on mysql; use --mode queuepool"):
        parse_modes("queuepool,pool", "mysql")


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


def test_sum_pool_stats_adds_counters_and_keeps_settings_and_peaks():
    queuepool = {
        "1": {"pool": {"pool_size": 5, "max_overflow": 10, "timeout": 1.0, "checkouts": 100, "connects": 15,
                       "timeouts": 3, "peak_checked_out": 15, "open": 15}},
        "2": {"pool": {"pool_size": 5, "max_overflow": 10, "timeout": 1.0, "checkouts": 50, "connects": 7,
                       "timeouts": 0, "peak_checked_out": 7, "open": 7}},
    }  # fmt: skip
    assert stats.sum_pool_stats(queuepool) == {
        "pool_size": 5, "max_overflow": 10, "timeout": 1.0, "checkouts": 150, "connects": 22, "timeouts": 3,
        "peak_checked_out": 15, "open": 22, "workers": 2,
    }  # fmt: skip
    # psycopg_pool: pool_size is the connections held now, so it adds; pool_max is a setting.
    native = {
        "1": {"pool": {"pool_min": 4, "pool_max": 8, "pool_size": 6, "requests_num": 10}},
        "2": {"pool": {"pool_min": 4, "pool_max": 8, "pool_size": 8, "requests_num": 5}},
    }
    assert stats.sum_pool_stats(native) == {
        "pool_min": 4, "pool_max": 8, "pool_size": 14, "requests_num": 15, "workers": 2,
    }  # fmt: skip
    assert stats.sum_pool_stats({"1": {"pool": {}}}) == {}


def test_connection_figures_use_the_measured_window():
    times = [10.0, 11.0, 12.0, 13.0, 14.0, 15.0]
    ours = [2.0, 6.0, 4.0, 4.0, 1.0, 0.0]
    figures = summarize_connections(
        times, ours, [5.0, 9.0, 7.0, 7.0, 4.0, 3.0], window=(11.5, 14.5), counted="x", max_used=(10, 12)
    )
    assert figures == {
        "samples": 6,
        "peak_connections": 6,  # the whole trial
        "window_peak_connections": 4,
        "mean_connections": 3.0,  # the measured window only
        "mean_over": "measured window",
        "window_samples": 3,
        "peak_all_connections": 9,
        "counted": "x",
        "max_used_connections": 12,
        "max_used_raised": True,
    }
    short = summarize_connections(times, ours, ours, window=(11.5, 12.5))
    assert short["mean_connections"] == round(17 / 6, 2) and short["window_samples"] == 0
    assert short["mean_over"] == "whole trial (window too short)"
    assert summarize_connections([], [], [], max_used=(12, 12)) == {
        "samples": 0,
        "max_used_connections": 12,
        "max_used_raised": False,
    }


def _wrapped(cause: Exception) -> Exception:
    """What Django's wrap_database_errors makes of a driver exception: its own class, same text, cause."""
    try:
        try:
            raise cause
        except Exception as exc:
            raise utils.OperationalError(*exc.args) from exc
    except utils.OperationalError as wrapped:
        return wrapped


def test_error_text_names_the_pool_exception():
    timeout = psycopg_pool.PoolTimeout("couldn't get a connection after 0.30 sec")
    wrapped = _wrapped(timeout)
    assert error_text(wrapped) == "PoolTimeout: couldn't get a connection after 0.30 sec"
    assert is_pool_timeout(wrapped) and is_pool_timeout(timeout)
    queue = sqlalchemy.exc.TimeoutError("QueuePool limit of size 5 overflow 10 reached")
    assert error_text(queue) == "TimeoutError: QueuePool limit of size 5 overflow 10 reached"
    assert is_pool_timeout(queue)
    assert not is_pool_timeout(ValueError("x")) and error_text(ValueError("x")) == "ValueError: x"


@pytest.mark.django_db
def test_chart_of_a_sweep_comparing_pooled_modes_draws_one_series_per_mode():
    from poolbench.results import charts, export

    from .sample_sweeps import make_sweep

    sweep = make_sweep(
        [
            {"pool_size": 4, "rps": 400.0},
            {"pool_size": 8, "rps": 800.0},
            {"pool_size": 4, "mode": "queuepool", "max_overflow": 0, "rps": 300.0},
            {"pool_size": 8, "mode": "queuepool", "max_overflow": 0, "rps": 500.0},
            {"pool_size": None, "mode": "none", "conn_max_age": 0, "rps": 100.0},
        ]
    )
    series = charts.series_for([sweep])
    assert [(s.mode, [t.index for t in s.trials]) for s in series] == [
        ("pool", [1, 2]),
        ("queuepool", [3, 4]),
    ]
    assert [t.index for t in series[0].references] == [5] and series[1].references == []
    html = export.to_html([sweep])
    chart = html[html.index('data-metric="rps"') :]
    chart = chart[: chart.index("</svg>")]
    # Two median lines, one per mode: size 8 of the QueuePool is not averaged with size 8 of Django's pool.
    medians = re.findall(r'<polyline class="pb-median" points="([^"]+)"', chart)
    assert len(medians) == 2
    assert f"#{sweep.pk} pool" in chart and f"#{sweep.pk} queuepool" in chart
