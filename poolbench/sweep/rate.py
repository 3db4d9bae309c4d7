"""``--rate R``: each configuration of the plan is offered R requests/s (open model); one that meets
every ``--slo`` target there is offered R x ``--headroom`` next, and the recommendation is the smallest
size that met every target at that rate (results/rate.py). Before each trial the Little's law bound
(connections / --query-delay-ms) is compared with its rate and the user told when it is below."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

from poolbench.models import Trial
from poolbench.results.rate import bound_warning
from poolbench.sweep.base import SweepOptions, SweepRun
from poolbench.sweep.plan import TrialSpec


def planned_rate_trials(options: SweepOptions) -> int:
    """At most: every configuration at the rate, and again at the rate x headroom."""
    return len(options.plan.specs) * (2 if options.headroom > 1 else 1)


def warn_bound(run: SweepRun, spec: TrialSpec, rate: float) -> None:
    warning = bound_warning(spec, rate, run.options.query_delay_ms)
    if warning:
        run.report("warning", f"Little's law: {warning}.")


def rate_specs(run: SweepRun, check: Callable[[TrialSpec], None]) -> Iterator[TrialSpec]:
    """The trials of --rate, each yielded once the one before is saved; ``check`` runs before every
    trial but the first (the target still answers)."""
    options = run.options
    assert run.sweep is not None and options.rate
    index = 0
    for spec in options.plan.specs:
        for rate in _rates(options):
            if index:
                check(spec)
            if rate != options.rate and not _met(run, index):
                break  # it missed the targets at the rate itself: the headroom cannot be met either
            index += 1
            warn_bound(run, spec, rate)
            if rate != options.rate:
                run.report(
                    "info",
                    f"{spec.label}: met every target at {options.rate:g} req/s; now at {rate:g} req/s "
                    f"(--headroom {options.headroom:g}).",
                )
            yield replace(spec, index=index, rate=rate)


def _rates(options: SweepOptions) -> list[float]:
    assert options.rate
    goal = round(options.rate * options.headroom, 6)
    return [options.rate] if goal == options.rate else [options.rate, goal]


def _met(run: SweepRun, index: int) -> bool:
    row = Trial.objects.filter(sweep=run.sweep, index=index).first()
    return bool(row and row.status == Trial.Status.OK and row.slo_passed)
