"""poolbench_report prints the USL fit, the open-model trials and the capacities of any stored sweep."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from poolbench.models import SizeCapacity
from poolbench.results import usl
from tests.sample_sweeps import make_sweep

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

SEED_002 = [(5, 9751.3), (10, 9947.3), (16, 9938.4), (200, 6147.4)]


def report(*ids: int) -> str:
    out = io.StringIO()
    call_command("poolbench_report", *map(str, ids), stdout=out)
    return out.getvalue()


def test_the_report_of_a_stored_four_size_sweep_prints_the_usl_fit():
    # The seed's table; the database saw as many connections as the pool had (JMeter's 1,000 threads).
    sweep = make_sweep([{"pool_size": n, "rps": x, "mean_connections": n} for n, x in SEED_002])
    text = report(sweep.pk)
    f = usl.sweep_fit(sweep.trials.all())
    line = (
        f"USL fit (throughput vs connections in use, 4 sizes): lambda {f.lam:.1f} req/s per connection, "
        f"sigma {f.sigma:.4f}, kappa {f.kappa:.6f}, N* = {f.n_star:.1f} connections, R^2 {f.r2:.3f}."
    )
    assert line in text and 10 <= f.n_star <= 32
    assert "Predicted peak: 9,976 req/s at about 11 connections in use." in text


def test_three_sizes_print_no_fit():
    sweep = make_sweep([{"pool_size": n, "rps": x, "mean_connections": n} for n, x in SEED_002[:3]])
    assert "USL fit" not in report(sweep.pk)


def test_open_model_trials_and_capacities_are_printed():
    sweep = make_sweep(
        [
            {"pool_size": 2, "rps": 80.0, "target_rate": 200.0, "achieved_rate": 75.8, "late_requests": 399,
             "dropped_requests": 635, "rate_offered": False, "slo_passed": False,
             "slo_results": [{"target": "p99<100ms", "metric": "p99", "limit": 100.0, "value": 4300.0, "passed": False}]},
            {"pool_size": 8, "rps": 204.4, "target_rate": 200.0, "achieved_rate": 207.6, "late_requests": 0,
             "dropped_requests": 0, "rate_offered": True, "slo_passed": True,
             "slo_results": [{"target": "p99<100ms", "metric": "p99", "limit": 100.0, "value": 90.0, "passed": True}]},
        ],
        options={"slo": ["p99<100ms"]},
    )  # fmt: skip
    SizeCapacity.objects.create(
        sweep=sweep, mode="pool", workers=1, threads=32, size=8, capacity_rps=250.0, bound_rps=400.0, trials=2,
        steps=[{"rate": 200.0, "trial": 1, "passed": True}, {"rate": 300.0, "trial": 2, "passed": False}, {"stopped": "x"}],
        best=True, recommended=True,
    )  # fmt: skip
    text = report(sweep.pk)
    assert (
        "  trial 1 (pool 2): target 200 req/s, sent 75.8/s, answered 80.0/s, late 399, dropped 635 RATE NOT OFFERED "
        "(see the trial's notes), SLO missed: p99 4300 ms (target p99<100ms)"
    ) in text
    assert (
        "  trial 2 (pool 8): target 200 req/s, sent 207.6/s, answered 204.4/s, late 0, dropped 0, SLO met"
        in text
    )
    assert "Capacity at SLO (--find-capacity: the highest rate that met p99<100ms; + met, - missed):" in text
    assert "pool 8 (best) (recommended)" in text and "200+, 300-" in text
