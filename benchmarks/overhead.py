"""Seconds each trial spends outside its measured window, and the memory of the orchestrating process.

    .venv/bin/python benchmarks/overhead.py [--trials 4] [--database-url postgres://...]

Runs a real sweep (default server and load settings, short windows) and prints, per trial, where the
time outside warm-up + window went: server start to first answer (Locust boots meanwhile), load time
after the window (results written, Locust stopped), pool statistics, server stop. Target: < 1 s.
"""

from __future__ import annotations

import io
import resource
import statistics
import time

from common import machine, parser, setup_django

KEYS = [
    "server_start_s",
    "locust_start_s",
    "locust_stop_s",
    "load_outside_window_s",
    "stats_s",
    "server_stop_s",
]


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--trials", type=int, default=4)
    p.add_argument("--duration", default="3")
    p.add_argument("--warmup", default="1")
    args = p.parse_args()
    setup_django(args.database_url)
    from django.core.management import call_command

    from poolbench.conf import default_workers, get_config
    from poolbench.models import Sweep

    config = get_config()
    sizes = ",".join(str(4 + 4 * i) for i in range(args.trials))
    t0 = time.monotonic()
    call_command(
        "poolbench", "--sizes", sizes, "--duration", args.duration, "--warmup", args.warmup,
        stdout=io.StringIO(), stderr=io.StringIO(),
    )  # fmt: skip
    wall = time.monotonic() - t0
    sweep = Sweep.objects.order_by("-id").first()
    trials = list(sweep.trials.order_by("index"))
    window = float(args.duration) + float(args.warmup)
    print(f"machine: {machine()}")
    print(
        f"sweep: {len(trials)} trials, {config['WORKERS'] or default_workers()}x{config['THREADS'] or 32} server, "
        f"{config['USERS']} users, "
        f"{args.warmup}s warm-up + {args.duration}s window; {sweep.target}"
    )
    print(f"{'trial':<10}" + "".join(f"{k:>22}" for k in KEYS) + f"{'outside window s':>20}")
    outside = []
    for t in trials:
        extra = t.overhead["trial_total_s"] - window
        outside.append(extra)
        print(f"{t.label:<10}" + "".join(f"{t.overhead.get(k, 0):>22.3f}" for k in KEYS) + f"{extra:>20.3f}")
    for name, fn in (("mean", statistics.mean), ("max", max)):
        row = [fn([t.overhead.get(k, 0) for t in trials]) for k in KEYS]
        print(f"{name:<10}" + "".join(f"{v:>22.3f}" for v in row) + f"{fn(outside):>20.3f}")
    print(
        f"overhead per trial outside the measured window: mean {statistics.mean(outside):.2f} s, "
        f"max {max(outside):.2f} s (target < 1 s)"
    )
    print(f"whole sweep: {wall:.1f} s wall for {len(trials)} x {window:g} s of load")
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"memory: peak RSS of the orchestrating process {peak_kib / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
