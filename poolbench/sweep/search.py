"""``--sizes auto``: which sizes to measure, one after the other, until the smallest size on the
plateau is found (see analysis.next_auto_size)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from poolbench.results import analysis
from poolbench.results.summary import sweep_formula
from poolbench.sweep.base import SweepOptions, SweepRun
from poolbench.sweep.plan import MAX_SIZE, TrialSpec


def planned_trials(options: SweepOptions) -> int:
    """How many trials the sweep runs (under --sizes auto: at most)."""
    if options.auto:
        return options.auto_max_sizes * max(s.repeat for s in options.plan.specs)
    if options.find_capacity:
        from poolbench.sweep.capacity import planned_capacity_trials

        return planned_capacity_trials(options)
    if options.rate:
        from poolbench.sweep.rate import planned_rate_trials

        return planned_rate_trials(options)
    return len(options.plan.specs)


# Beyond each trial's own worst case (below): the checks before the first trial, the summary after.
SWEEP_MARGIN = 300.0


def planned_seconds(options: SweepOptions) -> float:
    """The longest the sweep can take, every trial at its worst (the limits sweep/load.py and
    sweep/server.py enforce: start timeout, load window plus its 60 s allowance, waiting for workers)."""
    load = options.load
    per_trial = options.start_timeout + load.warmup + load.duration + 60.0
    if load.expect_workers:
        per_trial += load.workers_timeout
    return planned_trials(options) * per_trial + SWEEP_MARGIN


def auto_max_size(options: SweepOptions, workers: int) -> int:
    """The largest size the search may try: what fits in max_connections (unless --allow-over-max)."""
    limit = options.target.max_connections
    if not limit or options.allow_over_max:
        return MAX_SIZE
    return max(1, min(MAX_SIZE, (limit - options.reserve) // workers))


def auto_specs(run: SweepRun) -> Iterator[TrialSpec]:
    """The trials of ``--sizes auto``, each yielded once the previous one is measured: the formula's
    size first, then double, halve or bisect until the smallest size on the plateau is found or
    ``auto_max_sizes`` sizes are measured (each ``--repeat`` times). The search's path is then
    recorded on the sweep (``options["search"]``)."""
    options, sweep = run.options, run.sweep
    assert sweep is not None
    template = options.plan.specs[0]
    max_size = auto_max_size(options, template.workers)
    start = min(sweep_formula(options)["per_worker"], max_size)
    repeat = max(s.repeat for s in options.plan.specs)
    path: list[dict[str, Any]] = []
    tried: set[int] = set()
    index = 0
    while True:
        size, why, stop = _next_size(run, template, start, max_size, tried)
        if size is None:
            break
        tried.add(size)
        run.report("info", f"--sizes auto: measuring size {size} ({why}).")
        for rep in range(1, repeat + 1):
            index += 1
            yield replace(template, index=index, size=size, pool_min=_pool_min(template, size), repeat=rep)
        measured = {s.size: s for s in analysis.by_size(sweep.trials.all())}.get(size)
        path.append({"size": size, "why": why, "rps": measured.rps if measured else None})
    run.extra["search"] = {"start": start, "max_size": max_size, "path": path, "stopped": stop}
    sweep.options = {**sweep.options, "search": run.extra["search"]}
    sweep.sizes = sorted(tried)
    run.report("info", f"--sizes auto: stopped after {len(path)} size(s): {stop}.")


def _next_size(
    run: SweepRun, template: TrialSpec, start: int, max_size: int, tried: set[int]
) -> tuple[int | None, str, str]:
    """(the next size to measure, why, "") or (None, "", why the search stops)."""
    options = run.options
    assert run.sweep is not None
    summaries = [
        s
        for s in analysis.by_size(run.sweep.trials.all())
        if s.config == (template.mode, template.workers, template.threads)
    ]
    size, why = analysis.next_auto_size(
        summaries, start=start, tolerance=options.tolerance, max_size=max_size
    )
    if size is None:
        return None, "", why
    if size in tried:
        return None, "", f"size {size} could not be measured (its trials failed to run)"
    if len(tried) >= options.auto_max_sizes:
        return None, "", f"the cap of {options.auto_max_sizes} sizes was reached"
    return size, why, ""


def _pool_min(template: TrialSpec, size: int) -> int | None:
    if template.mode != "pool" or template.pool_min is None:
        return template.pool_min
    return min(template.pool_min, size)
