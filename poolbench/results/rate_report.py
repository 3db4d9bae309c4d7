"""What the sweep's summary and ``poolbench_report`` print beyond the closed-loop tables: the open-model
trials (target, achieved, late, dropped, SLO), capacity at SLO per size, and the USL fit."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate

from poolbench.results import rate, usl

CAPACITY_HEADERS = [
    "config",
    "server",
    "capacity at SLO req/s",
    "Little's law bound",
    "trials",
    "rates tried",
]


def capacity_lines(sweep: Any) -> list[str]:
    rows = []
    for c in sweep.capacities.all():
        tried = ", ".join(f"{s['rate']:g}{'+' if s['passed'] else '-'}" for s in c.steps if "rate" in s)
        mark = " (best)" if c.best else ""
        mark += " (recommended)" if c.recommended else ""
        rows.append([
            f"{c.mode} {c.size}{mark}", f"{c.workers}x{c.threads}",
            "-" if c.capacity_rps is None else f"{c.capacity_rps:,.1f}",
            "-" if c.bound_rps is None else f"{c.bound_rps:,.0f}", c.trials, tried,
        ])  # fmt: skip
    if not rows:
        return []
    targets = ", ".join((sweep.options or {}).get("slo") or [])
    return [
        "",
        f"Capacity at SLO (--find-capacity: the highest rate that met {targets}; + met, - missed):",
        tabulate(rows, headers=CAPACITY_HEADERS),
    ]


def usl_lines(trials: list[Any]) -> list[str]:
    try:
        return usl.report_lines(trials)
    except (RuntimeError, ValueError) as exc:  # curve_fit found no fit
        return [f"USL fit: not found ({exc})."]


def report_lines(sweep: Any) -> list[str]:
    trials = sorted(sweep.trials.all(), key=lambda t: t.index)
    lines = rate.trial_lines(trials) + capacity_lines(sweep)
    fit = usl_lines(trials)
    return lines + ([""] + fit if fit else [])
