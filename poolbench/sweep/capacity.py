"""``--find-capacity``: for each configuration, the highest arrival rate that still meets every
``--slo`` target, by a bounded search: from a starting rate, double while the targets are met, halve
while they are not, then bisect between the highest rate met and the lowest missed, at most
``MAX_STEPS`` trials per configuration. Each configuration's result is stored as a SizeCapacity row."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from poolbench.models import SizeCapacity, Trial
from poolbench.results.rate import little_bound
from poolbench.sweep.base import SweepOptions, SweepRun
from poolbench.sweep.plan import TrialSpec
from poolbench.sweep.rate import warn_bound

MAX_STEPS = 6  # trials per configuration
PRECISION = 0.05  # stop bisecting once the highest rate met is within 5% of the lowest missed
DEFAULT_START = 50.0  # req/s, without --rate or --query-delay-ms to start from
MIN_RATE = 1.0


@dataclass
class Step:
    rate: float
    trial: int
    passed: bool
    why: str


def configs(options: SweepOptions) -> list[TrialSpec]:
    """The plan's configurations, once each (the search runs one trial per step, not --repeat)."""
    return [s for s in options.plan.specs if s.repeat == 1]


def planned_capacity_trials(options: SweepOptions) -> int:
    return len(configs(options)) * MAX_STEPS


def start_rate(options: SweepOptions, spec: TrialSpec) -> float:
    """--rate when given; else half the Little's law bound when --query-delay-ms sets one; else 50."""
    if options.rate:
        return options.rate
    bound = little_bound(spec.usable_connections, options.query_delay_ms)
    return round(bound / 2, 1) if bound else DEFAULT_START


def next_rate(steps: list[Step], start: float) -> tuple[float | None, str]:
    """The next rate to try and why; (None, why the search stops)."""
    if not steps:
        return start, "the starting rate"
    if len(steps) >= MAX_STEPS:
        return None, f"the cap of {MAX_STEPS} trials was reached"
    met = [s.rate for s in steps if s.passed]
    missed = [s.rate for s in steps if not s.passed]
    if not missed:
        return round(max(met) * 2, 1), "every rate so far met the targets: double"
    if not met:
        rate = round(min(missed) / 2, 1)
        return (
            (rate, "no rate met the targets yet: halve")
            if rate >= MIN_RATE
            else (None, "even 1 req/s missed")
        )
    lo = max(met)
    above = [r for r in missed if r > lo]
    if not above:
        return round(lo * 2, 1), "double"
    hi = min(above)
    if hi <= lo * (1 + PRECISION):
        return None, f"{lo:g} req/s met the targets and {hi:g} did not"
    return round((lo + hi) / 2, 1), f"bisect between {lo:g} (met) and {hi:g} (missed)"


def capacity_specs(run: SweepRun, check: Callable[[TrialSpec], None]) -> Iterator[TrialSpec]:
    """The search's trials, each yielded once the one before is saved."""
    options = run.options
    assert run.sweep is not None
    index = 0
    for spec in configs(options):
        steps: list[Step] = []
        start = start_rate(options, spec)
        while True:
            rate, why = next_rate(steps, start)
            if rate is None:
                break
            if index:
                check(spec)
            index += 1
            warn_bound(run, spec, rate)
            run.report("info", f"--find-capacity {spec.label}: trying {rate:g} req/s ({why}).")
            yield replace(spec, index=index, rate=rate)
            steps.append(_step(run, index, rate, why))
        save_capacity(run, spec, steps, why)


def _step(run: SweepRun, index: int, rate: float, why: str) -> Step:
    row = Trial.objects.filter(sweep=run.sweep, index=index).first()
    passed = bool(row and row.status == Trial.Status.OK and row.slo_passed)
    return Step(rate=rate, trial=index, passed=passed, why=why)


def save_capacity(run: SweepRun, spec: TrialSpec, steps: list[Step], stopped: str) -> SizeCapacity:
    met = [s.rate for s in steps if s.passed]
    capacity = max(met) if met else None
    row = SizeCapacity.objects.create(
        sweep=run.sweep, mode=spec.mode, workers=spec.workers, threads=spec.threads, size=spec.size,
        capacity_rps=capacity, bound_rps=little_bound(spec.usable_connections, run.options.query_delay_ms),
        trials=len(steps), steps=[{**s.__dict__, "stopped": ""} for s in steps] + [{"stopped": stopped}],
    )  # fmt: skip
    shown = "no rate met the targets" if capacity is None else f"{capacity:g} req/s"
    run.report("info", f"--find-capacity {spec.label}: capacity at SLO {shown} ({stopped}).")
    return row


def verdict(
    capacities: list[Any], tolerance: float, rate: float | None, headroom: float
) -> tuple[int | None, str]:
    """Mark the best and the recommended capacity rows; the recommended size and why.

    With --rate: the smallest size whose capacity holds rate x headroom. Without: the smallest size
    within ``tolerance`` of the largest capacity."""
    found = [c for c in capacities if c.capacity_rps]
    if not found:
        return None, "No size met every target at any rate tried (--find-capacity)."
    best = max(found, key=lambda c: c.capacity_rps)
    best.best = True
    if rate:
        goal = rate * headroom
        holding = sorted((c for c in found if c.capacity_rps >= goal), key=lambda c: c.size or 0)
        if not holding:
            return None, (
                f"No size's capacity at SLO reached {goal:g} req/s (--rate {rate:g} x --headroom "
                f"{headroom:g}); the largest was {best.capacity_rps:g} req/s at size {best.size}."
            )
        chosen = holding[0]
        why = (
            f"Size {chosen.size} is the smallest whose capacity at SLO ({chosen.capacity_rps:g} req/s) holds "
            f"{goal:g} req/s (--rate {rate:g} x --headroom {headroom:g})."
        )
    else:
        near = sorted(
            (c for c in found if c.capacity_rps >= best.capacity_rps * (1 - tolerance)),
            key=lambda c: c.size or 0,
        )
        chosen = near[0]
        why = (
            f"Size {best.size} reached the largest capacity at SLO ({best.capacity_rps:g} req/s); size "
            f"{chosen.size} is the smallest within {tolerance:.0%} of it ({chosen.capacity_rps:g} req/s)."
        )
    chosen.recommended = True
    return chosen.size, why
