"""--find-capacity's bounded search (pure): double, halve, bisect, stop within MAX_STEPS trials; the
verdict over the sizes' capacities."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from poolbench.sweep.capacity import MAX_STEPS, Step, next_rate, verdict


def search(capacity: float, start: float) -> tuple[list[Step], str]:
    """Run the search against a size that meets the targets up to ``capacity`` req/s."""
    steps: list[Step] = []
    while True:
        rate, why = next_rate(steps, start)
        if rate is None:
            return steps, why
        steps.append(Step(rate=rate, trial=len(steps) + 1, passed=rate <= capacity, why=why))


@pytest.mark.parametrize(("capacity", "start"), [(95, 50), (380, 200), (1000, 50), (30, 200), (400, 400)])
def test_the_search_stays_bounded_and_lands_on_a_rate_that_was_met(capacity, start):
    steps, _ = search(capacity, start)
    assert len(steps) <= MAX_STEPS
    met = [s.rate for s in steps if s.passed]
    assert met and max(met) <= capacity


def test_from_half_the_bound_it_ends_within_20_percent_of_it():
    for bound in (100, 400):
        steps, _ = search(0.97 * bound, bound / 2)
        best = max(s.rate for s in steps if s.passed)
        assert best >= 0.8 * bound, steps


def test_it_halves_while_nothing_is_met_and_stops_below_1_req_s():
    steps, why = search(0.0, 8)
    assert [s.rate for s in steps][:4] == [8, 4, 2, 1]
    assert why == "even 1 req/s missed"


def _cap(size, rps):
    return SimpleNamespace(size=size, capacity_rps=rps, best=False, recommended=False)


def test_verdict_smallest_within_tolerance_and_the_rate_with_headroom():
    caps = [_cap(2, 90.0), _cap(8, 360.0), _cap(16, 370.0)]
    size, why = verdict(caps, 0.05, None, 1.2)
    assert size == 8 and caps[2].best and caps[1].recommended
    assert why == (
        "Size 16 reached the largest capacity at SLO (370 req/s); size 8 is the smallest within 5% of it "
        "(360 req/s)."
    )
    caps = [_cap(2, 90.0), _cap(8, 360.0)]
    assert verdict(caps, 0.05, 70, 1.2)[0] == 2  # 84 req/s needed
    assert verdict(caps, 0.05, 80, 1.2)[0] == 8  # 96 req/s needed
    size, why = verdict(caps, 0.05, 400, 1.2)
    assert size is None and "reached 480 req/s" in why
