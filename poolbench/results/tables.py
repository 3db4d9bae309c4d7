"""Tables of results (tabulate) for the terminal."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tabulate import tabulate

from poolbench.models import Sweep, Trial
from poolbench.results import analysis, saturation
from poolbench.wire import PREFIX

# "db peak"/"db mean": the trial server's connections as the database server counted them (peak over the
# trial, mean over the measured window); see observe.DatabaseConnections.
HEADERS = [
    "#", "mode / pool", "server", "req/s", "p50 ms", "p95 ms", "p99 ms", "p99.9 ms", "max ms", "fail", "fail %",
    "cpu load/srv/db", "host cpu", "load lag ms", "db peak", "db mean", "status",
]  # fmt: skip
SIZE_HEADERS = [
    "config",
    "server",
    "trials",
    "req/s median",
    "95% CI",
    "vs best (95% CI)",
    "min-max",
    "CV %",
    "p99 ms",
    "fail %",
    "load-bound",
]
TIME_HEADERS = [
    "#", "config", "requests", "queued", "pool wait", "connect", "database", "python", "CPU/GIL wait",
    "in server", "of client mean", "db CPU", "largest share",
]  # fmt: skip
_PARTS = {"acquire": "waiting for a connection", "db": "in the database", "app": "the rest of the request"}
SPLIT_LABELS = {
    "queue": "queued in the server",
    "pool_wait": "waiting in the pool",
    "connect": "opening connections",
    "sql": "in the database",
    "python": "running Python",
    "gil": "waiting for CPU/GIL",
}


def _num(value: Any, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def cpu_cell(t: Trial) -> str:
    """Cores used on average in the window by Locust, the server and the database ('?' = not seen,
    '-' = not sampled)."""
    if not t.cpu:
        return "-"
    cores = (t.load_cores, t.server_cores, t.database_cores)
    return "/".join("?" if c is None else f"{c:.1f}" for c in cores)


def host_cell(t: Trial) -> str:
    """The whole host's CPU use in the window, in % of all its cores, and whether it was saturated."""
    share = saturation.host_share(t.cpu or {})
    if share is None:
        return "-"
    return f"{share:.0%} (saturated)" if t.host_cpu_saturated else f"{share:.0%}"


def trial_row(t: Trial) -> list[Any]:
    status = t.status if not t.load_bound else f"{t.status} (LOAD-BOUND)"
    return [
        t.index,
        t.label,
        f"{t.workers}x{t.threads}",
        _num(t.rps, 1),
        _num(t.latency_p50_ms),
        _num(t.latency_p95_ms),
        _num(t.latency_p99_ms),
        _num(t.latency_p999_ms),
        _num(t.latency_max_ms),
        t.failures,
        _num(t.failure_pct, 1),
        cpu_cell(t),
        host_cell(t),
        saturation.lag_cell((t.cpu or {}).get("load_lag")),
        "-" if t.peak_connections is None else t.peak_connections,
        _num(t.mean_connections, 1),
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
    return any(not str(e.get("name", "")).startswith(PREFIX) for t in trials for e in t.endpoints or [])


def sizes_table(summaries: Sequence[Any], tablefmt: str = "simple") -> str:
    """Per configuration and size: analysis.SizeSummary or the SizeSummary rows (the same names)."""
    rows = []
    for s in summaries:
        label = f"{s.mode} {s.size}"
        rows.append(
            [
                label,
                f"{s.workers}x{s.threads}",
                s.trials,
                _num(s.rps, 1),
                ci_cell(s.rps_ci_low, s.rps_ci_high, 1),
                vs_best_cell(s),
                f"{s.rps_min:,.1f}-{s.rps_max:,.1f}",
                "-" if s.rps_cv is None else f"{100 * s.rps_cv:.1f}",
                _num(s.p99_ms),
                _num(s.failure_pct, 2),
                f"{s.load_bound}/{s.trials}" if s.load_bound else "-",
            ]
        )
    return tabulate(rows, headers=SIZE_HEADERS, tablefmt=tablefmt, disable_numparse=True)


def ci_cell(low: float | None, high: float | None, digits: int) -> str:
    return "-" if low is None or high is None else f"{low:,.{digits}f}-{high:,.{digits}f}"


def vs_best_cell(s: Any) -> str:
    """'0.97 (0.93-1.01)': throughput against the mode's best size, paired by pass (results/decision.py)."""
    ratio = getattr(s, "vs_best", None)
    if ratio is None:
        return "-"
    interval = ci_cell(getattr(s, "vs_best_low", None), getattr(s, "vs_best_high", None), 2)
    return f"{ratio:.2f}" + ("" if interval == "-" else f" ({interval})")


def _ms(value: float | None) -> str:
    # Two significant digits below 10 ms (pool waits are often fractions of a millisecond), whole ms above.
    if value is None:
        return "-"
    if value < 0.01:
        return "0"
    return f"{value:.2g}" if value < 10 else f"{value:,.0f}"


def _part(t: Trial, part: str) -> str:
    mean = getattr(t, f"{part}_mean_ms")
    if mean is None:
        return "-"
    return f"{_ms(mean)} / {_ms(getattr(t, f'{part}_p95_ms'))}"


def largest_share(timing: Mapping[str, Any]) -> str:
    """The largest part of the time in the server (the split's parts; the older parts for old rows)."""
    share, labels = timing.get("split_share") or {}, SPLIT_LABELS
    if not share:
        share, labels = timing.get("share") or {}, _PARTS
    if not share:
        return "-"
    part = max(share, key=lambda k: share[k])
    return f"{labels[part]} ({share[part]:.0%})"


def _in_server(t: Trial) -> str:
    if t.total_mean_ms is None or t.queue_mean_ms is None:
        return _part(t, "total")
    return _ms(t.queue_mean_ms + t.total_mean_ms)


def db_cpu_per_request(t: Trial) -> float | None:
    """The database's own CPU per request (its mean cores x the window / the requests), in ms: what the
    'database' part can be held against (that part also holds the round trip and, in a GIL-bound server,
    the wait to get the GIL back after the answer)."""
    if t.database_cores is None or not t.duration_s or not t.requests:
        return None
    return t.database_cores * t.duration_s * 1000.0 / t.requests


def timing_table(trials: Iterable[Trial], tablefmt: str = "simple") -> str:
    rows = []
    for t in trials:
        if not t.timing:
            continue
        rows.append(
            [
                t.index,
                t.label,
                t.timing.get("requests", 0),
                *(_part(t, part) for part in SPLIT_LABELS),
                _in_server(t),
                "-" if t.split_coverage is None else f"{t.split_coverage:.0%} of {_ms(t.latency_avg_ms)}",
                _ms(db_cpu_per_request(t)),
                largest_share(t.timing),
            ]
        )
    return tabulate(rows, headers=TIME_HEADERS, tablefmt=tablefmt, disable_numparse=True)


def sweep_summary(sweep: Sweep) -> list[str]:
    lines = []
    by_mode = sweep.by_mode()
    if len(by_mode) > 1:
        for mode, entry in by_mode.items():
            if entry.get("best_size") is not None:
                best = f"{entry['best_rps']:,.1f} req/s at pool size {entry['best_size']}"
                lines.append(f"Best throughput ({mode}): {best}.")
            elif entry.get("best_rps") is not None:
                lines.append(f"Best throughput ({mode}): {entry['best_rps']:,.1f} req/s.")
    elif sweep.best_size is not None:
        lines.append(f"Best throughput: {sweep.best_rps:,.1f} req/s at pool size {sweep.best_size}.")
    formula = sweep.formula
    if formula:
        lines.append(analysis.formula_text(formula))
    search = (sweep.options or {}).get("search")
    if search:
        steps = ", ".join(
            f"{p['size']} ({'-' if p['rps'] is None else format(p['rps'], ',.0f')} req/s)"
            for p in search["path"]
        )
        lines.append(f"Search (--sizes auto) from {search['start']}: {steps}; stopped: {search['stopped']}.")
    if sweep.bottleneck:
        lines.append(sweep.bottleneck)
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
    return lines + open_model_lines(sweep)


def open_model_lines(sweep: Sweep) -> list[str]:
    """Open-model trials, capacity at SLO and the USL fit (results/rate_report.py)."""
    from poolbench.results.rate_report import report_lines

    return report_lines(sweep)


def saturation_lines(trials: Sequence[Trial]) -> list[str]:
    """The host-CPU warning under the trials table, with each saturated trial's reason."""
    saturated = [t for t in trials if t.host_cpu_saturated]
    if not saturated:
        return []
    lines = [
        f"HOST CPU SATURATED in trial(s) {', '.join(str(t.index) for t in saturated)}; "
        "their figures understate the server:"
    ]
    # Each trial's figures on a line of its own; what they mean and what to do (the same for every
    # trial: the stored reason's tail) once, after them.
    advice: list[str] = []
    for t in saturated:
        for reason in (t.cpu or {}).get("host_saturated", []):
            figures, sep, tail = reason.partition(", at or above ")
            lines.append(f"  trial {t.index}: {figures}")
            if sep and f"At or above {tail}" not in advice:
                advice.append(f"At or above {tail}")
    return lines + [f"  {a}" for a in advice]


def full_report(sweep: Sweep, trials: Sequence[Trial]) -> list[str]:
    """Everything the command prints after a sweep: trials, by size, where the time goes, the answer."""
    lines = [trials_table(trials)]
    if shows_pages(trials):
        lines += ["", "Per path (answers other than 2xx/3xx are failures):", endpoints_table(trials)]
    bound = [t for t in trials if t.load_bound]
    if bound:
        lines.append(
            f"LOAD-BOUND: the load generator limited trial(s) {', '.join(str(t.index) for t in bound)}; "
            "their figures understate the server:"
        )
        for t in bound:
            for reason in (t.cpu or {}).get("load_bound", []):
                lines.append(f"  trial {t.index}: {reason}")
    lines += saturation_lines(trials)
    if len({(t.workers, t.threads) for t in trials}) > 1:
        lines += ["", "Server concurrency grid: req/s (max DB connections = workers x (pool + overflow))"]
        lines.append(grid_table(trials))
    summaries = [s for s in sweep.size_summaries.all() if s.size is not None]
    if summaries:
        lines += [
            "",
            "By size (median of successful req/s over --repeat with its 95% bootstrap interval; against the "
            "best size, paired by pass, with its 95% t interval; spread: min-max, coefficient of variation):",
        ]
        lines.append(sizes_table(summaries))
    if any(t.timing for t in trials):
        lines += [
            "",
            "Where the time goes, inside the server (ms per request, mean / p95; the parts add up to "
            "'in server', the mean of which is shown as a share of Locust's mean latency):",
        ]
        lines.append(timing_table(trials))
    lines.append("")
    lines += sweep_summary(sweep)
    return lines


# --- Server concurrency grid: (workers x threads) rows, pool configuration columns -------------------


@dataclass
class GridCell:
    rps: float  # mean over the configuration's successful trials (repeats)
    max_connections: int | None  # workers x (pool + overflow)
    trials: int
    failures: int


@dataclass
class Grid:
    rows: list[tuple[int, int]]  # (workers, threads)
    columns: list[str]  # trial labels: "pool 4", "queuepool 4+2", ...
    cells: dict[tuple[tuple[int, int], str], GridCell]

    @property
    def best(self) -> GridCell | None:
        return max(self.cells.values(), key=lambda c: c.rps, default=None)


def _column_key(t: Trial) -> tuple[str, int]:
    return (t.mode, t.pool_size or 0)


def build_grid(trials: Iterable[Trial]) -> Grid:
    """Group trials by server concurrency and pool configuration; repeats are averaged."""
    groups: dict[tuple[tuple[int, int], str], list[Trial]] = {}
    order: dict[str, tuple[str, int]] = {}
    for t in trials:
        groups.setdefault(((t.workers, t.threads), t.label), []).append(t)
        order[t.label] = _column_key(t)
    cells = {}
    for key, group in groups.items():
        ok = [t for t in group if t.status == Trial.Status.OK]
        cells[key] = GridCell(
            rps=sum(t.rps for t in ok) / len(ok) if ok else 0.0,
            max_connections=group[0].max_db_connections,
            trials=len(ok),
            failures=sum(t.failures for t in ok),
        )
    rows = sorted({k[0] for k in groups})
    columns = sorted(order, key=lambda label: order[label])
    return Grid(rows=rows, columns=columns, cells=cells)


def grid_table(trials: Iterable[Trial], tablefmt: str = "simple") -> str:
    """The sweep as a grid: rows workers x threads, columns pool size, cells req/s and max DB connections."""
    grid = build_grid(trials)
    body = []
    for row in grid.rows:
        line: list[Any] = [f"{row[0]} x {row[1]}"]
        for col in grid.columns:
            cell = grid.cells.get((row, col))
            if cell is None:
                line.append("")
            elif not cell.trials:
                line.append("failed")
            else:
                conns = f" ({cell.max_connections} conns)" if cell.max_connections is not None else ""
                flag = " !" if cell.failures else ""
                line.append(f"{cell.rps:,.0f}{conns}{flag}")
        body.append(line)
    headers = ["workers x threads", *grid.columns]
    return tabulate(body, headers=headers, tablefmt=tablefmt, disable_numparse=True)
