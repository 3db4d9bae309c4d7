"""A real short sweep with repeats on real PostgreSQL (127.0.0.1:5432): the stored order is the seed's,
each SizeSummary's median, interval and comparison with the best agree with its stored trials
(recomputed here with numpy/scipy), and the progress lines give the count and the time left."""

from __future__ import annotations

import io
import math
import re
import statistics

import numpy as np
import pytest
from django.core.management import call_command
from scipy import stats

from poolbench.models import Sweep, Trial
from poolbench.results.decision import BOOTSTRAP_SEED
from poolbench.sweep.plan import build_plan

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.mark.django_db(transaction=True)
def test_a_sweep_with_repeats_stores_intervals_that_its_trials_give(no_stray_children):
    out = io.StringIO()
    call_command(
        "poolbench", "--sizes", "2,8", "--repeat", "3", "--seed", "7", "--duration", "1.5", "--warmup", "0.5",
        "--users", "8", "--threads", "8", "--query-delay-ms", "5", stdout=out, stderr=io.StringIO(),
    )  # fmt: skip
    text = out.getvalue()
    sweep = Sweep.objects.get()
    assert sweep.status == Sweep.Status.DONE and sweep.seed == 7
    assert "Server: workers 1 from POOLBENCH['WORKERS'] x threads 8 from --threads." in text
    assert "Each pass in a random order (--seed 7 replays it)." in text
    trials = list(sweep.trials.order_by("index"))
    expected = build_plan(sizes=[2, 8], modes=["pool"], workers=[1], threads=[8], repeat=3, seed=7)
    assert [(t.pool_size, t.repeat) for t in trials] == [(s.size, s.repeat) for s in expected.specs]
    # Progress: "[i/6]" on every line, the time left on every outcome but the last.
    outcomes = [
        line for line in text.splitlines() if re.match(r"\[\d/6\] pool \d, 1x8 threads: [\d,]+ req/s", line)
    ]
    assert len(outcomes) == 6
    assert all(re.search(r"; about \d+s left$", line) for line in outcomes[:-1]), outcomes
    assert "left" not in outcomes[-1]

    by_size: dict[int, dict[int, Trial]] = {}
    for t in trials:
        assert t.status == Trial.Status.OK and t.failures == 0, t.error_text
        assert t.rps == pytest.approx(
            (t.requests - t.failures) / t.duration_s, rel=1e-3
        )  # duration_s: 3 decimals
        by_size.setdefault(t.pool_size, {})[t.repeat] = t
    rows = {r.size: r for r in sweep.size_summaries.all()}
    best = max(rows.values(), key=lambda r: r.rps)
    for size, row in rows.items():
        rps = [by_size[size][p].rps for p in sorted(by_size[size])]
        assert row.trials == 3 and row.rps == pytest.approx(statistics.median(rps), abs=0.01)
        ci = stats.bootstrap(
            (np.asarray(rps),), np.median, confidence_level=0.95, n_resamples=9999, method="percentile",
            rng=np.random.default_rng(BOOTSTRAP_SEED),
        ).confidence_interval  # fmt: skip
        assert (row.rps_ci_low, row.rps_ci_high) == pytest.approx((ci.low, ci.high), abs=0.01)
        assert min(rps) <= row.rps_ci_low <= row.rps <= row.rps_ci_high <= max(rps)
        logs = np.log([by_size[size][p].rps / by_size[best.size][p].rps for p in (1, 2, 3)])
        half = stats.t.ppf(0.975, 2) * logs.std(ddof=1) / math.sqrt(3)
        assert row.vs_best == pytest.approx(math.exp(logs.mean()), abs=1e-3)
        if size != best.size:
            assert row.vs_best_low == pytest.approx(math.exp(logs.mean() - half), abs=1e-3)
            assert row.vs_best_high == pytest.approx(math.exp(logs.mean() + half), abs=1e-3)
    # The answer is stored and printed with its reason; pool 2 holds 5 ms queries for 8 threads: slower.
    assert sweep.recommended_size in (2, 8)
    assert [r.size for r in rows.values() if r.recommended] == [sweep.recommended_size]
    assert f"Recommended pool size: {sweep.recommended_size}. {sweep.recommendation}" in text
    assert "rests on one sample" not in sweep.recommendation
    assert re.search(
        r"^pool 2\s+1x8\s+3\s+[\d,.]+\s+[\d,.]+-[\d,.]+\s+[\d.]+ \([\d.]+-[\d.]+\)", text, re.M
    ), text
