"""A sweep's verdict, written onto its row: best and recommended size per mode, the per-size medians
and spread (SizeSummary rows), the formula's starting point and the CI gates (fields of Sweep)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from poolbench import backends
from poolbench.models import SizeSummary, Sweep, Trial
from poolbench.results import analysis, bottleneck, decision

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
    """Best and recommended size per pooled mode (sizes of different modes are not comparable): the
    sweep's own fields hold the first pooled mode's, its SizeSummary rows every configuration's. Then
    the formula and the CI gates, onto the sweep's fields. The rows are written; the sweep is not saved."""
    trials = list(sweep.trials.all())
    modes = list(dict.fromkeys(s.mode for s in options.plan.specs))
    verdicts = write_summaries(sweep, trials, modes, options.tolerance)
    pooled = list(verdicts)
    if pooled:
        first = sweep.by_mode().get(pooled[0], {})
        sweep.best_size, sweep.best_rps = first.get("best_size"), first.get("best_rps")
        sweep.recommended_size = verdicts[pooled[0]][0]
    if len(pooled) > 1:
        sweep.recommendation = " ".join(f"{m}: {verdicts[m][1]}" for m in pooled)
    elif pooled:
        sweep.recommendation = verdicts[pooled[0]][1]
    else:
        sweep.recommendation = "No pooled mode was measured, so there is no pool size to recommend."
    if options.rate or options.find_capacity:
        open_model_verdict(sweep, trials, options)
    set_formula(sweep, sweep_formula(options))
    bottleneck.record(sweep, trials, options.tolerance)
    judge_gates(sweep, trials, pooled[0] if pooled else None, options.gates)


def write_summaries(
    sweep: Sweep, trials: list[Trial], modes: list[str], tolerance: float
) -> dict[str, tuple[int | None, str]]:
    """Write the sweep's SizeSummary rows, ``modes`` in that order; return each pooled mode's
    recommended size and why (analysis.recommend)."""
    rows: list[SizeSummary] = []
    verdicts: dict[str, tuple[int | None, str]] = {}
    for mode in modes:
        mine = [t for t in trials if t.mode == mode]
        if mode not in backends.POOLED_MODES:
            rows += [_row(sweep, s) for s in analysis.without_pool(mine)]
            continue
        summaries = analysis.by_size(mine)
        if not summaries:
            verdicts[mode] = analysis.recommend(summaries, tolerance)
            continue
        decided = decision.decide(summaries, tolerance, analysis.sizes_without_data(mine))
        verdicts[mode] = (decided.size, decided.reason)
        rows += _mode_rows(sweep, summaries, decided)
    save_summaries(sweep, rows)
    return verdicts


def _row(
    sweep: Sweep,
    s: analysis.SizeSummary,
    *,
    on_plateau: bool = False,
    recommended: bool = False,
    vs_best: decision.Ratio | None = None,
) -> SizeSummary:
    return SizeSummary(
        sweep=sweep, mode=s.mode, workers=s.workers, threads=s.threads, size=s.size or None,
        trials=s.trials, rps=s.rps, rps_min=s.rps_min, rps_max=s.rps_max, rps_cv=s.rps_cv, p99_ms=s.p99_ms,
        failures=s.failures, failure_pct=s.failure_pct, load_bound=s.load_bound, on_plateau=on_plateau,
        recommended=recommended, rps_ci_low=s.rps_ci_low, rps_ci_high=s.rps_ci_high,
        vs_best=_round(vs_best.point if vs_best else None), vs_best_low=_round(vs_best.low if vs_best else None),
        vs_best_high=_round(vs_best.high if vs_best else None),
    )  # fmt: skip


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _mode_rows(
    sweep: Sweep, summaries: list[analysis.SizeSummary], decided: decision.Decision
) -> list[SizeSummary]:
    """A pooled mode's rows: in the configuration (workers x threads) that holds the best, each size's
    throughput against the best (decision.Verdict), whether it qualifies (on_plateau) and which one is
    recommended; the other configurations' rows carry their own figures only."""
    best = next((s for s in summaries if s.size == decided.best and not s.failures), None)
    rows = []
    for s in summaries:
        verdict = (
            (decided.verdicts or {}).get(s.size) if best is not None and s.config == best.config else None
        )
        rows.append(
            _row(
                sweep,
                s,
                on_plateau=bool(verdict and verdict.acceptable),
                recommended=verdict is not None and s.size == decided.size,
                vs_best=verdict.rps if verdict else None,
            )  # fmt: skip
        )
    return rows


def open_model_verdict(sweep: Sweep, trials: list[Trial], options: SweepOptions) -> None:
    """--rate / --find-capacity: the recommendation is about targets at a rate, not peak throughput
    (results/rate.py, sweep/capacity.py); the SizeSummary rows' ``recommended`` follows it."""
    from poolbench.results import rate
    from poolbench.sweep.capacity import verdict

    if options.find_capacity:
        capacities = list(sweep.capacities.all())
        size, why = verdict(capacities, options.tolerance, options.rate, options.headroom)
        for c in capacities:
            c.save(update_fields=["best", "recommended"])
    else:
        assert options.rate
        size, why = rate.recommend(trials, options.rate, options.headroom, options.slo)
    sweep.recommended_size, sweep.recommendation = size, why
    for row in sweep.size_summaries.all():
        if row.recommended != (row.size == size and size is not None):
            row.recommended = row.size == size and size is not None
            row.save(update_fields=["recommended"])


def save_summaries(sweep: Sweep, rows: list[SizeSummary]) -> None:
    """Replace the sweep's SizeSummary rows (a sweep summarised twice keeps only the last)."""
    for position, row in enumerate(rows, start=1):
        row.position = position
    sweep.size_summaries.all().delete()
    SizeSummary.objects.db_manager(sweep._state.db).bulk_create(rows)


def set_formula(sweep: Sweep, formula: dict[str, Any]) -> None:
    sweep.formula_cores = formula["cores"]
    sweep.formula_cores_source = formula["cores_source"][:200]
    sweep.formula_spindles = formula["spindles"]
    sweep.formula_workers = formula["workers"]
    sweep.formula_connections = formula["connections"]
    sweep.formula_per_worker = formula["per_worker"]


def judge_gates(sweep: Sweep, trials: list[Trial], mode: str | None, gates: analysis.Gates) -> None:
    """The CI gates, judged on the size recommended for the first pooled mode (or its best size when
    nothing is recommended); every trial is judged when no pooled mode ran."""
    gate_trials = [t for t in trials if t.mode == mode] if mode else trials
    summaries = [s for s in analysis.by_size(trials) if s.mode == mode]
    sweep.gate_size = analysis.gate_size(summaries, sweep.recommended_size)
    sweep.gate_fail_under_rps = gates.fail_under_rps
    sweep.gate_max_failure_rate = gates.max_failure_rate
    sweep.gate_max_p99_ms = gates.max_p99_ms
    sweep.gate_breaches = analysis.check_gates(gate_trials, sweep.gate_size, gates) if gates else []
    sweep.gate_passed = not sweep.gate_breaches if gates else None


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
    return sweep.gate_size, list(sweep.gate_breaches or [])
