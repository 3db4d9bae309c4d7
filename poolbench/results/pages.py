"""What the admin's trial page shows, one context function per section (a new section is one function and
one template), and the number formatting every page shares: units and sensible precision, never
``23.08723799998802``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from poolbench.results import trialcharts
from poolbench.wire import TIMING_PARTS


def number(value: Any, unit: str = "") -> str:
    """A measured value for a page: three significant digits below 10, one decimal below 1,000, whole
    numbers with separators above; the unit after it. None is "-"."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 10:
        text = f"{int(value):,}"
    elif abs(value) < 10:
        text = f"{value:.3g}"
    elif abs(value) < 1000:
        text = f"{value:,.1f}"
    else:
        text = f"{value:,.0f}"
    return f"{text} {unit}".rstrip()


def unit_of(key: str) -> str:
    """The unit a stored key's name gives: ``..._ms`` is milliseconds, ``..._s`` seconds, ``...cores``."""
    if key.endswith("_ms"):
        return "ms"
    if key.endswith("_s"):
        return "s"
    if key.endswith("cores"):
        return "cores"
    return ""


# Stored keys whose unit their name does not say.
UNITS = {"timeout": "s", "max_lifetime": "s", "max_idle": "s"}


def label_of(key: str) -> str:
    """A stored key as a label: the unit suffix goes (it follows the value), underscores become spaces."""
    for suffix in ("_ms", "_s"):
        if key.endswith(suffix):
            key = key[: -len(suffix)]
    return key.replace("_", " ")


def labelled(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, formatted value) of every scalar of a stored JSON object; nested objects are left out."""
    return [
        (label_of(key), number(value, UNITS.get(key) or unit_of(key)))
        for key, value in data.items()
        if not isinstance(value, (dict, list))
    ]


def headline(t: Any) -> list[tuple[str, str]]:
    return [
        ("throughput", number(t.rps, "req/s")),
        ("requests", number(t.requests)),
        ("failures", f"{number(t.failures)} ({t.failure_pct:.2f}%)"),
        ("measured window", number(t.duration_s, "s")),
        ("latency min", number(t.latency_min_ms, "ms")),
        ("mean", number(t.latency_avg_ms, "ms")),
        ("p50", number(t.latency_p50_ms, "ms")),
        ("p90", number(t.latency_p90_ms, "ms")),
        ("p95", number(t.latency_p95_ms, "ms")),
        ("p99", number(t.latency_p99_ms, "ms")),
        ("p99.9", number(t.latency_p999_ms, "ms")),
        ("max", number(t.latency_max_ms, "ms")),
        ("DB connections peak", number(t.peak_connections)),
        ("DB connections mean", number(t.mean_connections)),
        ("warm-up", number(t.warmup_s, "s")),
        ("server start", number(t.server_start_s, "s")),
        ("host CPU", host_cell(t, unit=" cores")),
        ("load generator lag", lag_cell(t, unit=" ms")),
    ]


def host_cell(t: Any, unit: str = "") -> str:
    """The whole host's mean busy cores in the window, and "saturated" when the host ran out of CPU
    (results/saturation.py): then the figures may be the machine's limit, not the pool's."""
    if t.host_cores is None:
        return "saturated" if t.host_cpu_saturated else "-"
    return f"{t.host_cores:.2f}{unit}" + (" saturated" if t.host_cpu_saturated else "")


def lag_cell(t: Any, unit: str = "") -> str:
    """Locust's event-loop lag in the window: mean / p99 / max (ms), "-" where not measured."""
    got = (t.load_lag_ms, t.load_lag_p99_ms, t.load_lag_max_ms)
    if all(v is None for v in got):
        return "-"
    return "/".join("-" if v is None else f"{v:.1f}" for v in got) + unit


def timing_rows(t: Any) -> list[dict[str, str]]:
    timing = t.timing or {}
    labels = {"acquire": "waiting for a connection", "db": "in the database", "app": "rest of the request",
              "total": "whole request"}  # fmt: skip
    rows = []
    for part in TIMING_PARTS:
        got = timing.get(part) or {}
        if got:
            share = (timing.get("share") or {}).get(part)
            rows.append({
                "part": labels.get(part, part), "mean": number(got.get("mean_ms"), "ms"),
                "p95": number(got.get("p95_ms"), "ms"), "max": number(got.get("max_ms"), "ms"),
                "share": "-" if share is None else f"{100 * share:.0f}%",
            })  # fmt: skip
    return rows


def cpu_rows(t: Any) -> list[dict[str, str]]:
    cpu = t.cpu or {}
    rows = []
    for role in ("load", "server", "database", "host"):
        got = cpu.get(role) or {}
        if got:
            busiest = got.get("busiest_process") or {}
            rows.append({
                "role": {"load": "load generator (Locust)", "host": "whole machine"}.get(role, role),
                "mean": number(got.get("mean_cores"), "cores"), "peak": number(got.get("peak_cores"), "cores"),
                "busiest": f"pid {busiest['pid']}: {number(busiest.get('cores'), 'cores')}" if busiest else "-",
                "scope": got.get("scope", f"{got['cpu_count']} CPUs" if "cpu_count" in got else ""),
            })  # fmt: skip
    return rows


def pool_tables(t: Any) -> dict[str, Any]:
    """The pool's counters summed over the server's workers, and per worker (pid) as columns."""
    stats = t.pool_stats or {}
    workers = stats.get("workers") or {}
    keys = list(dict.fromkeys(k for w in workers.values() for k in w))
    return {
        "total": labelled(stats.get("total") or {}),
        "settings": labelled((stats.get("settings") or {}).get("pool") or {}),
        "worker_pids": list(workers),
        "worker_rows": [
            (label_of(k), [number(w.get(k), unit_of(k)) for w in workers.values()]) for k in keys
        ],
    }


def trial_context(t: Any) -> dict[str, Any]:
    """Every section of the trial page."""
    return {
        "trial": t,
        "headline": headline(t),
        "latency_chart": trialcharts.latency_distribution(t),
        "timeline_charts": trialcharts.timeline_charts(t),
        "trial_errors": [
            {**e, "where": ", ".join(e.get("names") or []) or e.get("name") or "-"} for e in (t.errors or [])
        ],
        "endpoints": [{**e, "p95": number(e.get("p95_ms"), "ms")} for e in (t.endpoints or [])],
        "timing_rows": timing_rows(t),
        "cpu_rows": cpu_rows(t),
        "pool": pool_tables(t),
        "db_rows": labelled(t.db_stats or {}),
        "overhead_rows": labelled(t.overhead or {}),
    }
