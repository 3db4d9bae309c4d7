"""Numbers from Locust's output: percentiles from the full histogram, merged entries, grouped errors."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

PERCENTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99, "p999": 0.999}


def merge_histograms(histograms: Iterable[Mapping[Any, int]]) -> dict[int, int]:
    merged: dict[int, int] = {}
    for hist in histograms:
        for key, count in hist.items():
            ms = int(float(key))
            merged[ms] = merged.get(ms, 0) + int(count)
    return merged


def percentile(histogram: Mapping[Any, int], fraction: float) -> float | None:
    """Nearest-rank percentile of a {response time ms: count} histogram (Locust's rounding applies)."""
    items = sorted((float(k), int(v)) for k, v in histogram.items() if int(v) > 0)
    total = sum(v for _, v in items)
    if not total:
        return None
    rank = max(1, math.ceil(fraction * total))
    seen = 0
    for value, count in items:
        seen += count
        if seen >= rank:
            return value
    return items[-1][0]


def percentiles(histogram: Mapping[Any, int]) -> dict[str, float | None]:
    return {name: percentile(histogram, frac) for name, frac in PERCENTILES.items()}


def summarize(output: Mapping[str, Any]) -> dict[str, Any]:
    """Turn the plugin's JSON into the Trial's measured fields."""
    total = output["total"]
    requests = int(total["num_requests"])
    failures = int(total["num_failures"])
    start = output.get("measure_start") or total.get("start_time")
    end = output.get("measure_end") or total.get("last_request_timestamp")
    duration = max(0.0, float(end) - float(start)) if start and end else 0.0
    hist = merge_histograms([total.get("response_times") or {}])
    result: dict[str, Any] = {
        "duration_s": round(duration, 3),
        "requests": requests,
        "failures": failures,
        "failure_pct": round(100.0 * failures / requests, 3) if requests else 0.0,
        # Successful requests only: a size whose requests fail fast must not look faster.
        "rps": round((requests - failures) / duration, 2) if duration else 0.0,
        "latency_avg_ms": round(total["total_response_time"] / requests, 2) if requests else None,
        "latency_min_ms": total.get("min_response_time") if requests else None,
        "latency_max_ms": total.get("max_response_time") if requests else None,
        "response_times": {str(k): v for k, v in sorted(hist.items())},
    }
    exact_max = result["latency_max_ms"]
    for name, value in percentiles(hist).items():
        # Locust rounds times above 100 ms to 10 ms (above 1 s to 100 ms): a bucket can lie above the
        # exact maximum, which no percentile can exceed.
        if value is not None and exact_max is not None:
            value = min(value, float(exact_max))
        result[f"latency_{name}_ms"] = value
    result["endpoints"] = [
        {
            "name": e["name"],
            "method": e["method"],
            "requests": e["num_requests"],
            "failures": e["num_failures"],
            "p95_ms": percentile(e.get("response_times") or {}, 0.95),
        }
        for e in output.get("entries", [])
    ]
    result["errors"] = group_errors(output.get("errors", []))
    return result


def group_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Group failures by message, with counts and the paths they came from, most frequent first."""
    grouped: dict[str, dict[str, Any]] = {}
    for err in errors:
        message = str(err.get("message", "")).strip()
        entry = grouped.setdefault(message, {"message": message, "count": 0, "names": []})
        entry["count"] += int(err.get("count", 0))
        name = err.get("name")
        if name and name not in entry["names"]:
            entry["names"].append(name)
    return sorted(grouped.values(), key=lambda e: (-e["count"], e["message"]))


# Per-worker settings of the pool (the same in every worker): the total keeps the value, not a sum.
POOL_SETTINGS_KEYS = frozenset({"pool_min", "pool_max", "max_overflow", "timeout"})


def sum_pool_stats(workers: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The pool statistics of the whole server from each worker's snapshot.

    Every worker has its own pool, so counters (requests, checkouts, connects, timeouts) and current
    state (open, checked out) add up. Settings (``POOL_SETTINGS_KEYS``) and per-worker peaks
    (``peak_*``: the most at once in one worker, which cannot be added across workers sampled apart)
    keep the largest value. A QueuePool's ``pool_size`` is its configured size, so it is kept too;
    psycopg_pool's ``pool_size`` is the connections it holds now, and adds up.
    """
    total: dict[str, Any] = {}
    n = 0
    for snap in workers.values():
        pool = snap.get("pool") or {}
        if pool:
            n += 1
        queuepool = "checkouts" in pool
        for key, value in pool.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            keep = key in POOL_SETTINGS_KEYS or key.startswith("peak_") or (queuepool and key == "pool_size")
            total[key] = max(total.get(key, value), value) if keep else total.get(key, 0) + value
    if n:
        total["workers"] = n
    return total


from poolbench.wire import POOL_COUNTERS, SPLIT_PARTS, TIMING_PARTS  # noqa: E402


def merge_timing(workers: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Where the time went, over every server worker: mean, p95 and max per part of a request.

    Each worker sends sums and {ms bucket: count} histograms (serve.Timing); histograms are merged
    before the p95 is taken, never averaged.
    """
    snaps = [w["timing"] for w in workers.values() if (w.get("timing") or {}).get("hists")]
    if not snaps:
        return {}
    requests = sum(int(s.get("requests", 0)) for s in snaps)
    out: dict[str, Any] = {
        "requests": requests,
        "acquires": sum(int(s.get("acquires", 0)) for s in snaps),
        "queries": sum(int(s.get("queries", 0)) for s in snaps),
        "pool_waits": sum(int(s.get("pool_waits", 0)) for s in snaps),
        "opens": sum(int(s.get("opens", 0)) for s in snaps),
        "queue_timed": all(s.get("queue_timed") for s in snaps),
        "workers": len(snaps),
        "window": "measured" if all(s.get("window") == "measured" for s in snaps) else "whole run",
    }
    if not requests:
        return out
    parts = [p for p in (*TIMING_PARTS, *SPLIT_PARTS) if all(p in s["sums"] for s in snaps)]
    sums = {part: sum(float(s["sums"].get(part, 0.0)) for s in snaps) for part in parts}
    for part in parts:
        hist: dict[float, int] = {}
        for s in snaps:
            for key, count in (s["hists"].get(part) or {}).items():
                hist[float(key)] = hist.get(float(key), 0) + int(count)
        out[part] = {
            "mean_ms": round(sums[part] / requests, 3),
            "p95_ms": percentile(hist, 0.95),
            "max_ms": round(max(float(s["maxes"].get(part, 0.0)) for s in snaps), 3),
        }
    if sums["total"] > 0:
        out["share"] = {part: round(sums[part] / sums["total"], 3) for part in ("acquire", "db", "app")}
    if "gil" in sums:
        in_server = sums["queue"] + sums["total"]
        if in_server > 0:
            out["split_share"] = {part: round(sums[part] / in_server, 3) for part in SPLIT_PARTS}
        if out["acquires"]:
            out["pool_wait_per_checkout_ms"] = round(sums["pool_wait"] / out["acquires"], 4)
    return out


def pool_window(workers: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The pool's own counters over the measured window, summed over workers: each worker's counters at
    the end minus those it read when the window started (Collector.mark_window). Empty when a worker
    did not see the window start. ``wait_ms_per_request``: requests_wait_ms / requests_num."""
    total: dict[str, Any] = {}
    for snap in workers.values():
        end, start = snap.get("pool") or {}, snap.get("pool_at_mark")
        if not end:
            continue
        if start is None:
            return {}
        keys = [k for k in (*POOL_COUNTERS, "connects", "checkouts", "timeouts") if k in end]
        for key in keys:
            total[key] = total.get(key, 0) + (end.get(key) or 0) - (start.get(key) or 0)
    if total.get("requests_num"):
        total["wait_ms_per_request"] = round(total.get("requests_wait_ms", 0) / total["requests_num"], 4)
    return total
