"""Stability: run the same default sweep K times and say how often it gave the same answer.

    .venv/bin/python benchmarks/stability.py [--runs 5] [--database-url ...] [-- more poolbench options]

Each run is `manage.py poolbench` exactly as a user types it (the README's `make sweep`: the default
sizes on an embedded PostgreSQL), as a child process, with results in a throw-away SQLite file. The
script prints each run's recommended size and wall time, the most frequent recommendation and how many
runs gave it, and each size's req/s across the runs (median, min-max, spread): on a shared machine a
size's throughput moves between runs, and the answer should not move with it.
Target on a 2-core machine: the same recommendation in at least 4 of 5 runs.
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from common import ROOT, machine, scratch_dir

RECOMMENDED = re.compile(r"^Recommended pool size: (\d+)\. (.*)$", re.M)


def one_run(results: Path, extra: list[str], database_url: str | None) -> tuple[int | None, float, str]:
    """One `manage.py poolbench` as a child: (recommended size, wall seconds, the reason printed)."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["DATABASE_URL"] = database_url or f"sqlite:///{results}"
    env["POOLBENCH_EMBEDDED"] = "0" if database_url else "1"
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "poolbench", *extra],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-2000:], sep="\n", file=sys.stderr)
        raise SystemExit(f"the sweep failed (exit {proc.returncode})")
    found = RECOMMENDED.search(proc.stdout)
    return (int(found.group(1)) if found else None), wall, (found.group(2) if found else proc.stdout[-500:])


def load_average() -> str:
    """The machine's 1-minute load average after the run: how busy the cores were."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "?"


def rps_by_size(results: Path) -> dict[int, list[float]]:
    """Every ok trial's req/s by pool size, over all the sweeps in the results file."""
    with sqlite3.connect(results) as db:
        rows = db.execute("SELECT pool_size, rps FROM poolbench_trial WHERE status = 'ok'").fetchall()
    out: dict[int, list[float]] = {}
    for size, rps in rows:
        out.setdefault(int(size), []).append(float(rps))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--database-url", help="Benchmark this server instead of an embedded PostgreSQL.")
    p.add_argument("extra", nargs="*", help="More `manage.py poolbench` options (default: none).")
    args = p.parse_args()
    print(machine())
    scratch = scratch_dir()
    results = scratch / "results.sqlite3"
    answers: list[int | None] = []
    walls: list[float] = []
    for n in range(1, args.runs + 1):
        size, wall, reason = one_run(results, args.extra, args.database_url)
        answers.append(size)
        walls.append(wall)
        print(
            f"run {n}/{args.runs}: recommended {size}, {wall:.0f} s, load average {load_average()}",
            flush=True,
        )
        print(f"  {reason}", flush=True)
    (mode, count), *_ = Counter(answers).most_common(1)
    print()
    print(f"recommendations: {answers}")
    print(f"most frequent: {mode} in {count} of {args.runs} runs (target: at least 4 of 5)")
    print(
        f"wall time per sweep: median {statistics.median(walls):.0f} s, "
        f"min {min(walls):.0f} s, max {max(walls):.0f} s"
    )
    if not args.database_url:
        print("req/s per size across the runs (ok trials):")
        for size, values in sorted(rps_by_size(results).items()):
            mid = statistics.median(values)
            spread = (max(values) - min(values)) / mid * 100 if mid else 0.0
            print(
                f"  size {size:>4}: median {mid:,.0f}, min {min(values):,.0f}, max {max(values):,.0f} "
                f"(spread {spread:.0f}% of the median, {len(values)} trials)"
            )


if __name__ == "__main__":
    main()
