"""What the per-second timeline costs the load generator: the plugin's request listener, per request.

Runs the listener (poolbench/loadgen/plugin.py ``_count_second``) in this process, alternating rounds with
an empty listener of the same signature (what Locust's event dispatch costs anyway), and prints the median
and the spread of both over the rounds, and the extra CPU at 1,000 req/s. Locust's own handling of one
request (its stats, the HTTP client) costs far more; this is the part the timeline adds.

    .venv/bin/python benchmarks/timeline_cost.py [--calls 200000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from statistics import median

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _empty(response_time=0, exception=None, **kwargs):
    return None


def _round(fn, calls: int) -> float:
    latencies = [3.0 + (i % 97) * 1.7 for i in range(calls)]  # spread over the 1 ms and 10 ms buckets
    start = time.perf_counter()
    for ms in latencies:
        fn(response_time=ms, exception=None, request_type="GET", name="/p", response_length=2)
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    from poolbench.loadgen import plugin  # Locust's monkey-patching stays in this script's process

    listener, empty = [], []
    for _ in range(args.rounds):
        plugin._seconds.clear()
        listener.append(_round(plugin._count_second, args.calls))
        empty.append(_round(_empty, args.calls))
    extra = [a - b for a, b in zip(listener, empty, strict=True)]
    print(f"load average {os.getloadavg()[0]:.1f}; {args.rounds} rounds of {args.calls:,} calls, alternating")
    print(
        f"listener: median {median(listener):.2f} us per request (min {min(listener):.2f}, max {max(listener):.2f})"
    )
    print(f"empty:    median {median(empty):.2f} us per request (min {min(empty):.2f}, max {max(empty):.2f})")
    print(f"the timeline adds {median(extra):.2f} us per request (spread {min(extra):.2f}-{max(extra):.2f}): "
          f"{median(extra) * 1000 / 1e6 * 100:.2f}% of one core at 1,000 req/s")  # fmt: skip


if __name__ == "__main__":
    main()
