"""Fill the result columns of 0003 from the JSON that held them before, and back.

Trials: peak/mean connections from ``db_stats``, the time split from ``timing``, CPU cores from ``cpu``,
server start and warm-up from ``overhead`` (the JSON stays: it keeps the detail). Sweeps: the per-size
rows from ``options["by_size"]`` (and, for modes without a pool, from their trials), the formula and
the gates from ``options``, which then keeps only settings. Self-contained on purpose: a migration
must not change when poolbench's code does later.
"""

from __future__ import annotations

from statistics import mean, median, pstdev
from typing import Any

from django.db import migrations

TIMING_PARTS = ("acquire", "db", "app", "total")
CPU_COLUMNS = {"load": "load_cores", "server": "server_cores", "database": "database_cores"}
POOLED_MODES = ("pool", "queuepool")
RESULT_KEYS = ("by_size", "by_mode", "formula", "gates")
TRIAL_COLUMNS = [
    "peak_connections", "mean_connections", "server_start_s", "warmup_s", *CPU_COLUMNS.values(),
    *(f"{part}_{kind}_ms" for part in TIMING_PARTS for kind in ("mean", "p95")),
]  # fmt: skip


def trial_columns(trial: Any) -> None:
    """Set a trial's columns from its JSON fields (missing figures stay empty)."""
    db, cpu, overhead = trial.db_stats or {}, trial.cpu or {}, trial.overhead or {}
    trial.peak_connections = db.get("peak_connections")
    trial.mean_connections = db.get("mean_connections")
    for part in TIMING_PARTS:
        values = (trial.timing or {}).get(part) or {}
        setattr(trial, f"{part}_mean_ms", values.get("mean_ms"))
        setattr(trial, f"{part}_p95_ms", values.get("p95_ms"))
    for role, column in CPU_COLUMNS.items():
        setattr(trial, column, (cpu.get(role) or {}).get("mean_cores"))
    trial.server_start_s = overhead.get("server_start_s")
    trial.warmup_s = overhead.get("warmup_s")


def _step(ms: float) -> float:
    return 1.0 if ms < 100 else 10.0 if ms < 1000 else 100.0


def _on_plateau(s: dict[str, Any], best: dict[str, Any], tolerance: float) -> bool:
    # As analysis.on_plateau was when the JSON was written.
    if s.get("failures") or s["rps"] < best["rps"] * (1 - tolerance):
        return False
    if best.get("p99_ms") is not None and s.get("p99_ms") is not None:
        return s["p99_ms"] <= best["p99_ms"] * (1 + tolerance) + _step(best["p99_ms"])
    return True


def _without_pool(trials: list[Any]) -> list[dict[str, Any]]:
    """Summaries of the finished trials that had no pool to size, one per mode and workers x threads."""
    groups: dict[tuple[str, int, int], list[Any]] = {}
    for t in trials:
        if t.status == "ok" and not t.pool_size:
            groups.setdefault((t.mode, t.workers, t.threads), []).append(t)
    out = []
    for (mode, workers, threads), group in sorted(groups.items()):
        rps = [float(t.rps) for t in group]
        p99s = [t.latency_p99_ms for t in group if t.latency_p99_ms is not None]
        requests, failures = sum(t.requests for t in group), sum(t.failures for t in group)
        out.append({
            "mode": mode, "workers": workers, "threads": threads, "size": None, "trials": len(group),
            "rps": round(median(rps), 2), "rps_min": min(rps), "rps_max": max(rps),
            "rps_cv": round(pstdev(rps) / mean(rps), 4) if len(rps) > 1 and mean(rps) > 0 else None,
            "p99_ms": median(p99s) if p99s else None, "failures": failures,
            "failure_pct": round(100.0 * failures / requests, 3) if requests else 0.0,
            "load_bound": sum(1 for t in group if t.load_bound), "on_plateau": False, "recommended": False,
        })  # fmt: skip
    return out


def summary_rows(sweep: Any, trials: list[Any]) -> list[dict[str, Any]]:
    """The sweep's per-size rows, modes in the order they first ran, from the stored JSON."""
    options = sweep.options or {}
    tolerance = float(options.get("tolerance") or 0.05)
    by_mode = options.get("by_mode") or {}
    defaults = {"mode": "pool", "workers": 1, "threads": 1, "failures": 0, "failure_pct": 0.0, "load_bound": 0}
    stored = [{**defaults, **s} for s in options.get("by_size") or []]
    for s in stored:
        s.setdefault("rps_min", s["rps"])
        s.setdefault("rps_max", s["rps"])
    extra = _without_pool(trials)
    first = {}
    for t in sorted(trials, key=lambda t: t.index):
        first.setdefault(t.mode, t.index)
    rows = []
    for mode in sorted({s["mode"] for s in stored + extra}, key=lambda m: (first.get(m, 0), m)):
        mine = [s for s in stored if s["mode"] == mode]
        best = max(mine, key=lambda s: s["rps"], default=None)
        recommended = (by_mode.get(mode) or {}).get("recommended_size")
        for s in mine:
            s["on_plateau"] = _on_plateau(s, best, tolerance)
            config = (s["workers"], s["threads"]) == (best["workers"], best["threads"])
            s["recommended"] = s["size"] == recommended and config
        rows += mine + [s for s in extra if s["mode"] == mode]
    return rows


def sweep_columns(sweep: Any) -> None:
    """Set a sweep's formula and gate fields from its options."""
    options = sweep.options or {}
    formula = options.get("formula") or {}
    sweep.formula_cores = formula.get("cores")
    sweep.formula_cores_source = str(formula.get("cores_source") or "")[:200]
    sweep.formula_spindles = formula.get("spindles")
    sweep.formula_workers = formula.get("workers")
    sweep.formula_connections = formula.get("connections")
    sweep.formula_per_worker = formula.get("per_worker")
    gates = options.get("gates") or {}
    sweep.gate_fail_under_rps = gates.get("fail_under_rps")
    sweep.gate_max_failure_rate = gates.get("max_failure_rate")
    sweep.gate_max_p99_ms = gates.get("max_p99_ms")
    sweep.gate_size = gates.get("size")
    sweep.gate_breaches = list(gates.get("breaches") or [])
    asked = any(gates.get(k) is not None for k in ("fail_under_rps", "max_failure_rate", "max_p99_ms"))
    sweep.gate_passed = not sweep.gate_breaches if asked else None
    sweep.options = {k: v for k, v in options.items() if k not in RESULT_KEYS}


SUMMARY_FIELDS = (
    "mode", "workers", "threads", "size", "trials", "rps", "rps_min", "rps_max", "rps_cv", "p99_ms",
    "failures", "failure_pct", "load_bound", "on_plateau", "recommended",
)  # fmt: skip


def forward(apps: Any, schema_editor: Any) -> None:
    db = schema_editor.connection.alias
    Sweep = apps.get_model("poolbench", "Sweep")
    Trial = apps.get_model("poolbench", "Trial")
    SizeSummary = apps.get_model("poolbench", "SizeSummary")
    for sweep in Sweep.objects.using(db).iterator():
        trials = list(Trial.objects.using(db).filter(sweep=sweep))
        for t in trials:
            trial_columns(t)
        Trial.objects.using(db).bulk_update(trials, TRIAL_COLUMNS)
        rows = summary_rows(sweep, trials)
        SizeSummary.objects.using(db).filter(sweep=sweep).delete()  # run twice, written once
        SizeSummary.objects.using(db).bulk_create(
            SizeSummary(sweep=sweep, position=n, **{k: r.get(k) for k in SUMMARY_FIELDS})
            for n, r in enumerate(rows, start=1)
        )
        sweep_columns(sweep)
        sweep.save(using=db)


def backward(apps: Any, schema_editor: Any) -> None:
    """Put the JSON back into ``options`` (the trials' JSON was never removed)."""
    db = schema_editor.connection.alias
    Sweep = apps.get_model("poolbench", "Sweep")
    for sweep in Sweep.objects.using(db).iterator():
        rows = list(sweep.size_summaries.order_by("position"))
        pooled = [r for r in rows if r.size is not None]
        by_mode: dict[str, Any] = {}
        for r in rows:
            entry = by_mode.setdefault(r.mode, {})
            if r.size is None:
                entry["best_rps"] = max(entry.get("best_rps", r.rps_max), r.rps_max)
                continue
            entry.setdefault("recommended_size", None)
            entry["recommended_size"] = r.size if r.recommended else entry["recommended_size"]
            if r.rps > entry.get("best_rps", -1.0):
                entry.update(best_size=r.size, best_rps=r.rps)
        sweep.options = {
            **(sweep.options or {}),
            "by_mode": by_mode,
            "by_size": [
                {k: getattr(r, k) for k in SUMMARY_FIELDS if k not in ("on_plateau", "recommended")}
                for r in pooled
            ],
            "gates": {
                "fail_under_rps": sweep.gate_fail_under_rps, "max_failure_rate": sweep.gate_max_failure_rate,
                "max_p99_ms": sweep.gate_max_p99_ms, "size": sweep.gate_size,
                "breaches": list(sweep.gate_breaches or []),
            },  # fmt: skip
        }
        if sweep.formula_connections is not None:
            sweep.options["formula"] = {
                "cores": sweep.formula_cores, "cores_source": sweep.formula_cores_source,
                "spindles": sweep.formula_spindles, "connections": sweep.formula_connections,
                "workers": sweep.formula_workers, "per_worker": sweep.formula_per_worker,
            }  # fmt: skip
        sweep.save(using=db)
    apps.get_model("poolbench", "SizeSummary").objects.using(db).all().delete()


class Migration(migrations.Migration):
    dependencies = [("poolbench", "0003_results_columns")]

    operations = [migrations.RunPython(forward, backward)]
