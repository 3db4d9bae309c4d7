"""The samplers' arithmetic (poolbench.measure): pool statistics summed across workers, connection
figures over the measured window."""

from __future__ import annotations

from poolbench.measure import stats
from poolbench.measure.samplers import summarize_connections


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
