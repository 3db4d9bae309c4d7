"""The decision rule on trials with known spreads (results/decision.py): the interval of each size's
median, the paired comparison with the best, and the recommended size with its reason. The figures
are recomputed here with numpy/scipy directly, not through poolbench's helpers."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
import pytest
from scipy import stats

from poolbench.results import analysis, decision


@dataclass
class T:
    """A finished trial's fields as the analysis reads them from Trial rows; ``repeat`` is its pass."""

    pool_size: int
    rps: float
    repeat: int = 1
    index: int = 1
    latency_p99_ms: float | None = 50.0
    failures: int = 0
    requests: int = 10_000
    status: str = "ok"
    mode: str = "pool"
    workers: int = 2
    threads: int = 32
    load_bound: bool = False


def sweep(
    factors: dict[int, float], passes: int, *, pass_noise: float, own_noise: float, seed: int = 1, **kw
):
    """Trials of ``passes`` passes: size s does 1,000 x factors[s] req/s, times a factor shared by
    every size of the pass (the machine's load) and one of its own."""
    rng = random.Random(seed)
    trials, index = [], 0
    for p in range(1, passes + 1):
        shared = 1 + rng.uniform(-pass_noise, pass_noise)
        for size, factor in factors.items():
            index += 1
            own = 1 + rng.uniform(-own_noise, own_noise)
            trials.append(T(size, round(1000 * factor * shared * own, 2), repeat=p, index=index, **kw))
    return trials


def ratio_interval(mine: list[float], best: list[float]) -> tuple[float, float, float]:
    """The t interval (95%) of the mean log ratio of paired values, back as ratios: independent of
    poolbench's code."""
    logs = np.log(np.asarray(mine) / np.asarray(best))
    n = len(logs)
    half = stats.t.ppf(0.975, n - 1) * logs.std(ddof=1) / math.sqrt(n)
    return math.exp(logs.mean()), math.exp(logs.mean() - half), math.exp(logs.mean() + half)


def by_pass(trials, size):
    return [t.rps for t in sorted(trials, key=lambda t: t.repeat) if t.pool_size == size]


def test_sizes_within_the_noise_give_the_smallest_and_say_how_wide_the_noise_is():
    trials = sweep({5: 1.0, 10: 1.0, 16: 1.0, 200: 1.0}, 5, pass_noise=0.15, own_noise=0.04)
    summaries = analysis.by_size(trials)
    size, why = analysis.recommend(summaries, 0.05)
    best = max(summaries, key=lambda s: s.rps)
    widest = max(
        50 * (hi - lo)
        for s in summaries
        if s.size != best.size
        for _, lo, hi in [ratio_interval(by_pass(trials, s.size), by_pass(trials, best.size))]
    )
    assert size == 5
    # The "best" is the largest of four medians of equal sizes: the others look a little slower than
    # it, two of them beyond the noise here, but by less than the tolerance.
    assert why.startswith(
        f"5, 10, 16 and 200 are within the noise of each other (+-{widest:.0f}%) or the 5% tolerance: use 5, "
        "the smallest (medians of successful req/s over up to 5 passes: 5 "
    ), why
    # Without the selection effect (the best fixed in advance, the others measured equal) it is noise only.
    calm = sweep({5: 1.0, 10: 1.0, 16: 1.0, 200: 1.02}, 5, pass_noise=0.15, own_noise=0.04, seed=2)
    assert analysis.recommend(analysis.by_size(calm), 0.05)[1].startswith(
        "5, 10, 16 and 200 are within the noise of each other (+-"
    )


def test_a_size_slower_in_every_pass_is_found_though_the_machine_moves_more_than_it_loses():
    # Size 5 loses 12% in every pass; the machine moves every pass by up to +-20%, more than that.
    trials = sweep({5: 0.88, 10: 1.0, 16: 1.0}, 5, pass_noise=0.20, own_noise=0.02, seed=3)
    summaries = {s.size: s for s in analysis.by_size(trials)}
    # Each size's own interval (bootstrap of the median) cannot tell 5 from the others...
    assert summaries[5].rps_ci_high > summaries[10].rps_ci_low
    # ...the comparison paired by pass can.
    size, why = analysis.recommend(list(summaries.values()), 0.05)
    best = max(summaries.values(), key=lambda s: s.rps).size
    point, lo, hi = ratio_interval(by_pass(trials, 5), by_pass(trials, best))
    assert hi < 1 and point < 0.95
    assert size == 10
    assert f"5 was significantly slower ({point:.2f}x, 95% interval {lo:.2f}-{hi:.2f})" in why, why
    assert why.startswith("Size 10 ") or why.startswith("10 and 16 are within the noise"), why


def test_a_small_loss_beyond_the_noise_but_within_the_tolerance_still_takes_the_smaller_size():
    trials = sweep({5: 0.98, 10: 1.0}, 5, pass_noise=0.2, own_noise=0.002, seed=5)
    point, lo, hi = ratio_interval(by_pass(trials, 5), by_pass(trials, 10))
    assert hi < 1  # significantly slower, but by 2%: not worth a larger pool
    size, why = analysis.recommend(analysis.by_size(trials), 0.05)
    assert size == 5
    assert why.startswith(
        f"5 and 10 are within the noise of each other (+-{50 * (hi - lo):.1f}%) or the 5% tolerance: use 5, "
        "the smallest"
    ), why
    # With no tolerance the same figures call for 10.
    assert analysis.recommend(analysis.by_size(trials), 0.0)[0] == 10


def test_sizes_with_failures_are_neither_best_nor_recommended():
    trials = sweep({5: 1.0, 10: 1.3, 16: 1.0}, 4, pass_noise=0.05, own_noise=0.01)
    for t in trials:
        if t.pool_size == 10 and t.repeat == 2:
            t.failures = 3  # one pass of the fastest size failed 3 requests
        if t.pool_size == 5:
            t.failures = 1
    summaries = analysis.by_size(trials)
    decided = decision.decide(summaries, 0.05)
    assert decided.best == 16  # the fastest failure-free size, not 10
    assert decided.size == 16
    assert "5 had 4 failures" in decided.reason and "10 had 3 failures" in decided.reason
    assert not decided.verdicts[10].acceptable and not decided.verdicts[5].acceptable


def test_failed_requests_do_not_count_as_throughput():
    from poolbench.measure.stats import summarize

    output = {
        "measure_start": 100.0,
        "measure_end": 105.0,
        "total": {"num_requests": 5000, "num_failures": 4000, "total_response_time": 5000.0,
                  "min_response_time": 1, "max_response_time": 2, "response_times": {"1": 5000}},
        "entries": [],
        "errors": [],
    }  # fmt: skip
    assert summarize(output)["rps"] == 200.0  # 1,000 successful requests in 5 s, not 1,000 req/s


def test_a_worse_p99_in_every_pass_rules_a_size_out():
    trials = sweep({5: 1.0, 10: 1.01}, 5, pass_noise=0.1, own_noise=0.001)
    rng = random.Random(9)
    for t in trials:
        t.latency_p99_ms = (160.0 if t.pool_size == 5 else 80.0) * (1 + rng.uniform(-0.05, 0.05))
    size, why = analysis.recommend(analysis.by_size(trials), 0.05)
    assert size == 10
    assert "5 had a significantly worse p99 (" in why, why


def test_one_sample_per_size_says_the_answer_rests_on_it():
    trials = [T(5, 960.0, index=1), T(10, 1000.0, index=2), T(16, 990.0, index=3)]
    summaries = analysis.by_size(trials)
    assert all(s.rps_ci_low is None and s.rps_ci_high is None for s in summaries)
    size, why = analysis.recommend(summaries, 0.05)
    assert size == 5
    assert why.endswith("The answer rests on one sample per size (--repeat 1): a size's throughput moves "
                        "between runs, so run --repeat 3 or more to tell the sizes apart."), why  # fmt: skip
    # One sample 10% below the best is out, as before.
    assert analysis.recommend(analysis.by_size([T(5, 900.0), T(10, 1000.0, index=2)]), 0.05)[0] == 10


@pytest.mark.parametrize("values", [[1000.0, 1100.0], [900.0, 1000.0, 1300.0], [5.0, 7.0, 6.0, 9.0, 2.0]])
def test_the_median_interval_is_scipys_percentile_bootstrap_and_holds_the_median(values):
    low, high = decision.median_interval(values)
    expected = stats.bootstrap(
        (np.asarray(values),), np.median, confidence_level=0.95, n_resamples=9999, method="percentile",
        rng=np.random.default_rng(decision.BOOTSTRAP_SEED),
    ).confidence_interval  # fmt: skip
    assert (low, high) == pytest.approx((expected.low, expected.high))
    assert min(values) <= low <= float(np.median(values)) <= high <= max(values)
    assert decision.median_interval([1000.0]) is None
    assert decision.median_interval([7.0, 7.0, 7.0]) == (7.0, 7.0)


def test_pairs_are_taken_by_pass_not_by_position():
    # Pass 2 of size 5 is missing (its trial failed): the ratios pair passes 1 and 3 only.
    mine = {1: 900.0, 3: 450.0}
    best = {1: 1000.0, 2: 2000.0, 3: 500.0}
    r = decision.paired_ratio(mine, best)
    assert r.passes == 2 and r.point == pytest.approx(0.9) and (r.low, r.high) == pytest.approx((0.9, 0.9))
