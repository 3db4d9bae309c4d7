"""Tables of results (tabulate) for the terminal."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tabulate import tabulate

from .models import Sweep, Trial

# "db peak"/"db mean": the trial server's connections as the database server counted them (peak over the
# trial, mean over the measured window); see observe.DatabaseConnections.
HEADERS = [
    "#", "mode / pool", "server", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "fail", "fail %",
    "db peak", "db mean", "status",
]  # fmt: skip


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def trial_row(t: Trial) -> list[Any]:
    status = t.status if not t.load_bound else f"{t.status} (load-bound)"
    db = t.db_stats or {}
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
        db.get("peak_connections", "-"),
        _num(db.get("mean_connections"), 1),
        status,
    ]


def trials_table(trials: Iterable[Trial], tablefmt: str = "simple") -> str:
    return tabulate([trial_row(t) for t in trials], headers=HEADERS, tablefmt=tablefmt, disable_numparse=True)


PATH_HEADERS = ["#", "config", "path", "requests", "fail", "fail %", "p95 ms", "first error"]


def endpoints_table(trials: Iterable[Trial], tablefmt: str = "simple") -> str:
    """Per path and trial: requests and failures (non-2xx/3xx answers count as failures), with the error."""
    rows = []
    for t in trials:
        for e in sorted(t.endpoints or [], key=lambda e: str(e.get("name"))):
            requests, failures = int(e.get("requests") or 0), int(e.get("failures") or 0)
            error = next((x["message"] for x in t.errors or [] if e.get("name") in x.get("names", [])), "")
            rows.append(
                [
                    t.index,
                    t.label,
                    f"{e.get('method', 'GET')} {e.get('name')}",
                    requests,
                    failures,
                    _num(100.0 * failures / requests if requests else 0.0, 1),
                    _num(e.get("p95_ms")),
                    error[:80],
                ]
            )
    headers = PATH_HEADERS
    if not any(row[-1] for row in rows):
        headers, rows = headers[:-1], [row[:-1] for row in rows]
    return tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True) if rows else ""


def shows_pages(trials: Iterable[Trial]) -> bool:
    """Whether the trials loaded the site's own pages (not just poolbench's probe)."""
    return any(not str(e.get("name", "")).startswith("/__poolbench__/") for t in trials for e in t.endpoints or [])


def sweep_summary(sweep: Sweep) -> list[str]:
    lines = []
    by_mode = (sweep.options or {}).get("by_mode") or {}
    if len(by_mode) > 1:
        for mode, entry in by_mode.items():
            if entry.get("best_size") is not None:
                best = f"{entry['best_rps']:,.1f} req/s at pool size {entry['best_size']}"
                lines.append(f"Best throughput ({mode}): {best}.")
            elif entry.get("best_rps") is not None:
                lines.append(f"Best throughput ({mode}): {entry['best_rps']:,.1f} req/s.")
    elif sweep.best_size is not None:
        lines.append(f"Best throughput: {sweep.best_rps:,.1f} req/s at pool size {sweep.best_size}.")
    if sweep.recommendation:
        prefix = f"Recommended pool size: {sweep.recommended_size}. " if sweep.recommended_size else ""
        lines.append(prefix + sweep.recommendation)
    over = (sweep.options or {}).get("over_max_connections")
    if over:
        lines.append(
            f"Ran over max_connections={over['max_connections']} (--allow-over-max): trial(s) "
            f"{', '.join(map(str, over['trials']))} may open up to {over['largest']} connections."
        )
    # Failures grouped by message (exhaustion shows as the pool's own message), with where they came from.
    errors: dict[str, int] = {}
    names: dict[str, list[str]] = {}
    trials: dict[str, list[str]] = {}
    for t in sweep.trials.all():
        for e in t.errors:
            errors[e["message"]] = errors.get(e["message"], 0) + e["count"]
            seen = names.setdefault(e["message"], [])
            seen += [n for n in e.get("names", []) if n not in seen]
            trials.setdefault(e["message"], []).append(f"{t.index} ({t.label})")
    for message, count in sorted(errors.items(), key=lambda kv: -kv[1])[:5]:
        where = f" (on {', '.join(names[message][:5])})" if names[message] else ""
        which = trials[message]
        where += f" in trial{'s' if len(which) > 1 else ''} {', '.join(which[:5])}"
        lines.append(f"  {count} x {message[:200]}{where}")
    return lines
