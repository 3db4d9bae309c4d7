"""A sweep's verdict, written onto its row: best and recommended size per mode, by-size medians and
spread, the formula's starting point and the CI gates."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from poolbench import backends
from poolbench.models import Sweep, Trial
from poolbench.results import analysis

if TYPE_CHECKING:
    from poolbench.sweep.run import SweepOptions

_LOCAL_HOSTS = ("", "127.0.0.1", "localhost", "::1")


def formula_cores(options: SweepOptions) -> tuple[int, str]:
    """The database host's core count for the formula, and where it came from."""
    here = os.cpu_count() or 1
    if options.db_cores:
        return options.db_cores, "database host cores from --db-cores"
    if options.target.embedded:
        return here, "the embedded database runs on this machine"
    host = str(options.target.database.get("HOST") or "")
    if host in _LOCAL_HOSTS or host.startswith("/"):
        return here, "the database runs on this machine"
    return here, f"database host cores unknown: this machine's {here} assumed; pass --db-cores"


def sweep_formula(options: SweepOptions) -> dict[str, Any]:
    cores, source = formula_cores(options)
    workers = min(s.workers for s in options.plan.specs)
    return analysis.formula(cores, source, options.spindles, workers)


def summarize(sweep: Sweep, options: SweepOptions) -> None:
    """Best and recommended size per pooled mode (sizes of different modes are not comparable); the
    sweep's own fields hold the first pooled mode's, ``options['by_mode']`` every mode's."""
    trials = list(sweep.trials.all())
    modes = list(dict.fromkeys(s.mode for s in options.plan.specs))
    by_mode: dict[str, Any] = {}
    texts = []
    first = True
    for mode in modes:
        mine = [t for t in trials if t.mode == mode]
        ok = [t for t in mine if t.status == Trial.Status.OK]
        if mode not in backends.POOLED_MODES:
            if ok:
                best = max(ok, key=lambda t: t.rps)
                by_mode[mode] = {"best_rps": round(best.rps, 2), "failures": sum(t.failures for t in ok)}
            continue
        summaries = analysis.by_size(mine)
        entry: dict[str, Any] = {}
        if summaries:
            best = max(summaries, key=lambda s: s.rps)
            entry.update(best_size=best.size, best_rps=round(best.rps, 2))
        size, text = analysis.recommend(summaries, options.tolerance)
        entry.update(recommended_size=size, recommendation=text)
        by_mode[mode] = entry
        if first:
            sweep.best_size, sweep.best_rps = entry.get("best_size"), entry.get("best_rps")
            sweep.recommended_size = size
            first = False
        texts.append(text)
    pooled = [m for m in modes if m in backends.POOLED_MODES]
    if len(pooled) > 1:
        sweep.recommendation = " ".join(f"{m}: {by_mode[m]['recommendation']}" for m in pooled)
    elif pooled:
        sweep.recommendation = texts[0]
    else:
        sweep.recommendation = "No pooled mode was measured, so there is no pool size to recommend."
    sweep.options = {**sweep.options, "by_mode": by_mode}
    # By size (median and spread over --repeat), the formula and the CI gates, judged on the size
    # recommended for the first pooled mode (or its best size when nothing is recommended).
    summaries = analysis.by_size(trials)
    first_mode = pooled[0] if pooled else None
    gate_trials = [t for t in trials if t.mode == first_mode] if first_mode else trials
    gate_size = analysis.gate_size([s for s in summaries if s.mode == first_mode], sweep.recommended_size)
    sweep.options = {
        **sweep.options,
        "by_size": [s.as_dict() for s in summaries],
        "formula": sweep_formula(options),
        "gates": {
            "fail_under_rps": options.gates.fail_under_rps,
            "max_failure_rate": options.gates.max_failure_rate,
            "max_p99_ms": options.gates.max_p99_ms,
            "size": gate_size,
            "breaches": analysis.check_gates(gate_trials, gate_size, options.gates) if options.gates else [],
        },
    }


def finish_sweep(sweep: Sweep, options: SweepOptions) -> None:
    trials = list(sweep.trials.all())
    ok = [t for t in trials if t.status == Trial.Status.OK and t.requests > t.failures]
    sweep.status = Sweep.Status.DONE if ok else Sweep.Status.FAILED
    if not ok:
        sweep.message = "every trial failed"
    sweep.finished_at = timezone.now()
    summarize(sweep, options)
    sweep.save()


def gate_breaches(sweep: Sweep) -> tuple[int | None, list[str]]:
    """The CI gates' verdict on a finished sweep: (the size judged, the thresholds it broke)."""
    gates = sweep.options.get("gates", {})
    return gates.get("size"), list(gates.get("breaches") or [])
