"""Tables of results (tabulate) for the terminal."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tabulate import tabulate

from .models import Sweep, Trial

HEADERS = ["#", "config", "server", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "fail", "fail %", "peak conns", "status"]


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def trial_row(t: Trial) -> list[Any]:
    status = t.status if not t.load_bound else f"{t.status} (load-bound)"
    return [
        t.index,
        t.label,
        f"{t.workers}x{t.threads}",
        _num(t.rps, 1),
        _num(t.latency_p50_ms),
        _num(t.latency_p95_ms),
        _num(t.latency_p99_ms),
        _num(t.latency_max_ms),
        t.failures,
        _num(t.failure_pct, 1),
        t.db_stats.get("peak_connections", "-") if t.db_stats else "-",
        status,
    ]


def trials_table(trials: Iterable[Trial], tablefmt: str = "simple") -> str:
    return tabulate([trial_row(t) for t in trials], headers=HEADERS, tablefmt=tablefmt, disable_numparse=True)


def sweep_summary(sweep: Sweep) -> list[str]:
    lines = []
    if sweep.best_size is not None:
        lines.append(f"Best throughput: {sweep.best_rps:,.1f} req/s at pool size {sweep.best_size}.")
    if sweep.recommendation:
        prefix = f"Recommended pool size: {sweep.recommended_size}. " if sweep.recommended_size else ""
        lines.append(prefix + sweep.recommendation)
    errors: dict[str, int] = {}
    for t in sweep.trials.all():
        for e in t.errors:
            errors[e["message"]] = errors.get(e["message"], 0) + e["count"]
    for message, count in sorted(errors.items(), key=lambda kv: -kv[1])[:5]:
        lines.append(f"  {count} x {message[:200]}")
    return lines
