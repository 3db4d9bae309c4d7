"""A trial second by second: what Locust saw (requests, failures, latency) and what the database saw
(the trial server's connections), from the first user to the end of the measured window.

Locust's side comes from poolbench's plugin (``seconds`` in its output: per wall-clock second, the requests
that ended in it, warm-up included); the database's from the connection sampler's timed samples. Stored on
``Trial.timeline`` for the trial page's charts: whether the warm-up was long enough, whether the pool was
still growing.
"""

from __future__ import annotations

import math
from typing import Any

from poolbench.measure.stats import percentile


def build(output: dict[str, Any], db_times: list[float], db_values: list[float]) -> dict[str, Any]:
    """The timeline of one trial: ``seconds`` (one dict per whole second from the first user's start,
    ``t`` its offset in seconds) and the measured window's bounds as offsets from the same start."""
    seconds = {int(s): b for s, b in (output.get("seconds") or {}).items()}
    start, end = output.get("test_start"), output.get("measure_end")
    if not seconds or not start or not end:
        return {}
    first = math.floor(start)
    rows = []
    for sec in range(first, math.ceil(end)):
        n, failures, total_ms, hist = seconds.get(sec, (0, 0, 0.0, []))
        counts = {float(k): c for k, c in hist}
        conns = [v for t, v in zip(db_times, db_values, strict=False) if sec <= t < sec + 1]
        rows.append(
            {
                "t": sec - first,
                "requests": n,
                "failures": failures,
                "mean_ms": round(total_ms / n, 3) if n else None,
                "p50_ms": percentile(counts, 0.50) if n else None,
                "p95_ms": percentile(counts, 0.95) if n else None,
                "connections": max(conns) if conns else None,
                # The first and last second hold only part of the load (it started or stopped in them).
                "partial": sec < start or sec + 1 > end,
            }
        )
    measure_start = output.get("measure_start")
    return {
        "start": first,
        "test_start_s": round(start - first, 3),  # the first user's start, within second 0
        "measure_start_s": round(measure_start - first, 3) if measure_start else None,
        "measure_end_s": round(end - first, 3),
        "seconds": rows,
    }
