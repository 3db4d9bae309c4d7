"""Unit tests for the pure parts: argument parsing, planning, percentiles."""

from __future__ import annotations

import pytest

from poolbench.measure import stats
from poolbench.sweep.plan import PlanError, build_plan, parse_duration, parse_modes, parse_sizes


def test_parse_sizes_keeps_order():
    assert parse_sizes("5,10,16,200") == [5, 10, 16, 200]
    assert parse_sizes(" 3 , 1 ") == [3, 1]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "--sizes is empty"),
        ("5,,10", "has an empty item"),
        ("5,x", "'x' is not a whole number"),
        ("5,-1", "'-1' is not a whole number"),
        ("0,5", "size 0 is not positive"),
        ("5,5", "size 5 is repeated"),
        ("2.5", "'2.5' is not a whole number"),
        ("20000", "larger than 10000"),
    ],
)
def test_parse_sizes_rejects(text, message):
    with pytest.raises(PlanError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_sizes(text)


@pytest.mark.parametrize(
    ("text", "seconds"), [("10", 10), ("10s", 10), ("500ms", 0.5), ("2m", 120), (3, 3.0)]
)
def test_parse_duration(text, seconds):
    assert parse_duration(text, "--duration") == seconds


@pytest.mark.parametrize("text", ["", "abc", "-5", "10x", "0"])
def test_parse_duration_rejects(text):
    with pytest.raises(PlanError, match="--duration"):
        parse_duration(text, "--duration")


def test_build_plan_interleaves_repeats_and_counts_connections():
    plan = build_plan(sizes=[5, 10], modes=["pool"], workers=[2], threads=[8], repeat=2)
    assert [(s.size, s.repeat) for s in plan.specs] == [(5, 1), (10, 1), (5, 2), (10, 2)]
    assert [s.index for s in plan.specs] == [1, 2, 3, 4]
    assert plan.specs[1].max_db_connections == 20


def test_build_plan_queuepool_counts_overflow():
    plan = build_plan(sizes=[5], modes=["queuepool", "none"], workers=[3], threads=[8], max_overflow=10)
    assert plan.specs[0].max_db_connections == 3 * 15
    assert plan.specs[1].size is None and plan.specs[1].max_db_connections == 3 * 8


def test_percentiles_from_histogram():
    hist = {"1": 50, "2": 40, "10": 9, "100": 1}
    assert stats.percentile(hist, 0.50) == 1
    assert stats.percentile(hist, 0.90) == 2
    assert stats.percentile(hist, 0.99) == 10
    assert stats.percentile(hist, 0.999) == 100
    assert stats.percentile({}, 0.5) is None


def test_summarize_uses_measured_window():
    output = {
        "measure_start": 100.0,
        "measure_end": 110.0,
        "total": {
            "num_requests": 1000,
            "num_failures": 10,
            "total_response_time": 5000.0,
            "min_response_time": 1,
            "max_response_time": 90,
            "response_times": {"4": 500, "5": 490, "90": 10},
        },
        "entries": [],
        "errors": [
            {"name": "/a", "method": "GET", "message": "HTTP 503: PoolTimeout: x", "count": 6},
            {"name": "/b", "method": "GET", "message": "HTTP 503: PoolTimeout: x", "count": 4},
        ],
    }
    result = stats.summarize(output)
    assert result["rps"] == 99.0  # successful requests only: 990 in 10 s
    assert result["failure_pct"] == 1.0
    assert result["latency_avg_ms"] == 5.0
    assert result["latency_p50_ms"] == 4 and result["latency_p99_ms"] == 5 and result["latency_p999_ms"] == 90
    assert result["latency_max_ms"] == 90
    capped = stats.summarize(
        {
            **output,
            "total": {**output["total"], "max_response_time": 306.2, "response_times": {"5": 98, "310": 2}},
        }
    )
    assert capped["latency_p99_ms"] == 306.2 and capped["latency_p50_ms"] == 5
    assert result["errors"] == [{"message": "HTTP 503: PoolTimeout: x", "count": 10, "names": ["/a", "/b"]}]


def test_usable_connections_are_capped_by_server_threads():
    plan = build_plan(sizes=[5, 200], modes=["pool"], workers=[2], threads=[32])
    assert [s.max_db_connections for s in plan.specs] == [10, 400]
    assert [s.usable_connections for s in plan.specs] == [10, 64]


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
