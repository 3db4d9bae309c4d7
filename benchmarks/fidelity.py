"""Fidelity: requests/s measured by poolbench's load (Locust) / requests/s measured by wrk, same server.

    .venv/bin/python benchmarks/fidelity.py [--rounds 6] [--duration 5] [--warmup 2]
                                            [--configs server,pool] [--database-url ...]
                                            [-- more poolbench options]

For each configuration one trial server stays up for all its rounds, and wrk (/usr/bin/wrk, as many
connections as Locust users, 2 threads) and poolbench's load take turns against it in ABBA order
(A = wrk, B = poolbench: A B, B A, A B, ...; an even number of rounds, so that each tool goes first
equally often and a drift on the machine hits both alike). Two configurations, with the default
settings otherwise:

- server: pool 200 (the largest default size) and the one-row probe: one GIL-bound server process is
  the limit, so the load generator's CPU competes with the server's;
- pool: pool 4 with --query-delay-ms 20: the pool is the limit (Little's law: 4 / 20 ms = 200 req/s).

Per configuration it prints each round's ratio, the median, and the mean ratio with a 95% confidence
interval (Student's t over the rounds' ratios, scipy). Target: ratio >= 0.95.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import build_options, machine, parser, setup_django

CHILD = "POOLBENCH_FIDELITY_CHILD"  # set in a configuration's child process: report the ratios only
WRK = shutil.which("wrk") or "/usr/bin/wrk"
CONFIGS = {
    "server": ("the server is the limit (one-row probe)", ["--sizes", "200"]),
    "pool": (
        "the pool is the limit (4 connections, 20 ms query)",
        ["--sizes", "4", "--query-delay-ms", "20"],
    ),
}


def wrk_rps(url: str, connections: int, duration: float, threads: int = 2) -> float:
    out = subprocess.run(
        [WRK, "-t", str(min(threads, connections)), "-c", str(connections),
         "-d", f"{max(1, round(duration))}s", url],
        capture_output=True, text=True, timeout=duration + 60, check=True,
    ).stdout  # fmt: skip
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        import urllib.error
        import urllib.request

        try:
            detail = urllib.request.urlopen(url, timeout=10).read()[:300]
        except urllib.error.HTTPError as exc:
            detail = f"HTTP {exc.code}: {exc.headers.get('X-Poolbench-Error')} {exc.read()[:300]!r}"
        raise RuntimeError(
            f"wrk saw {errors.group(1)} error responses; one request now gives {detail}\n{out}"
        )
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def even_rounds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 2 or value % 2:
        raise argparse.ArgumentTypeError(
            f"--rounds must be an even number >= 2 (ABBA), got {text!r}; e.g. --rounds 6"
        )
    return value


def config_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"--configs takes {', '.join(CONFIGS)} (comma-separated), got {text!r}"
        )
    return names


def interval(ratios: list[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean ratio and its two-sided Student's t confidence interval over the rounds."""
    from scipy import stats

    mean = statistics.fmean(ratios)
    if len(ratios) < 2:
        return mean, float("nan"), float("nan")
    low, high = stats.t.interval(confidence, len(ratios) - 1, loc=mean, scale=stats.sem(ratios))
    return mean, low, high


def poolbench_rps(load, server_url: str, state: Path) -> tuple[float, dict]:
    from poolbench.measure import stats
    from poolbench.sweep.load import run_load

    output = run_load(load, server_url, Path(tempfile.mkdtemp(dir=state)))
    measured = stats.summarize(output)
    if measured["failures"]:
        raise SystemExit(f"poolbench's load saw {measured['failures']} failures")
    return measured["rps"], output.get("load_lag") or {}


def run_config(name: str, args: argparse.Namespace) -> list[float]:
    """The rounds of one configuration against one trial server; the ratios."""
    from poolbench.sweep import children
    from poolbench.sweep.run import prepare, trial_config
    from poolbench.sweep.server import TrialServer

    title, sweep_args = CONFIGS[name]
    options = build_options(
        [*sweep_args, "--duration", f"{args.duration:g}", "--warmup", f"{args.warmup:g}", *args.extra]
    )
    spec, load = options.plan.specs[0], options.load
    state = Path(tempfile.mkdtemp(prefix="poolbench-fidelity-"))
    server, ratios = None, []
    try:
        prepare(options)
        server = TrialServer(
            config=trial_config(spec, options, secrets.token_urlsafe(16)),
            workers=spec.workers, threads=spec.threads, state_dir=state, bind=options.bind,
        )  # fmt: skip
        server.start()
        url = server.url + "/__poolbench__/probe"
        print(
            f"\n[{name}] {title}: server {spec.workers} worker(s) x {spec.threads} threads, {spec.label}; "
            f"{load.users} users (wrk: {load.users} connections, 2 threads), Locust processes {load.processes}; "
            f"{args.warmup:g}s warm-up + {args.duration:g}s per measurement"
        )
        wrk_rps(url, load.users, args.warmup)  # warm the server and the pool once
        for r in range(1, args.rounds + 1):
            order = ["wrk", "poolbench"] if r % 2 else ["poolbench", "wrk"]
            figures, lag = {}, {}
            for tool in order:
                if tool == "wrk":
                    wrk_rps(url, load.users, args.warmup)  # wrk has no warm-up of its own: Locust's
                    figures[tool] = wrk_rps(url, load.users, args.duration)
                else:
                    figures[tool], lag = poolbench_rps(load, server.url, state)
                time.sleep(0.5)
            ratios.append(figures["poolbench"] / figures["wrk"])
            print(
                f"  round {r} ({' then '.join(order)}): wrk {figures['wrk']:8.1f} req/s, poolbench "
                f"{figures['poolbench']:8.1f} req/s, ratio {ratios[-1]:.3f}; Locust's loop lag "
                f"{lag.get('mean_ms', float('nan')):.1f} ms mean, {lag.get('max_ms', float('nan')):.0f} ms max; "
                f"{machine().rsplit('; ', 1)[-1]}"
            )
    finally:
        if server is not None:
            server.stop()
        children.stop_all()
        options.target.close()
        shutil.rmtree(state, ignore_errors=True)
    return ratios


def run_child(name: str, argv: list[str]) -> list[float]:
    """Run one configuration in a child process (its output passes through); its ratios."""
    argv = [a for i, a in enumerate(argv) if a != "--configs" and (i == 0 or argv[i - 1] != "--configs")]
    argv = [a for a in argv if not a.startswith("--configs=")]
    proc = subprocess.Popen(
        [sys.executable, __file__, "--configs", name, *argv],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, CHILD: "1"},
    )
    ratios: list[float] = []
    for line in proc.stdout:
        if line.startswith("RATIOS "):
            ratios = [float(x) for x in line.split()[1].split(",")]
        else:
            print(line, end="", flush=True)
    if proc.wait():
        raise SystemExit(f"configuration {name} failed (exit code {proc.returncode})")
    return ratios


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--rounds", type=even_rounds, default=6, help="An even number of ABBA rounds (default 6).")
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--configs", type=config_list, default=list(CONFIGS), help="server,pool (default both).")
    p.add_argument(
        "extra", nargs="*", help="More `manage.py poolbench` options, e.g. --users 100 --threads 8."
    )
    args = p.parse_args()
    if len(args.configs) > 1:
        # One process per configuration: the demo project's target (an embedded PostgreSQL) is set up
        # once per process, and a second configuration in the same process found it stopped.
        results = {name: run_child(name, sys.argv[1:]) for name in args.configs}
    else:
        setup_django(args.database_url)
        print(f"machine: {machine()}")
        results = {args.configs[0]: run_config(args.configs[0], args)}
        if os.environ.get(CHILD):
            print("RATIOS " + ",".join(f"{r:.6f}" for r in results[args.configs[0]]), flush=True)
            return
    print("\nfidelity (poolbench / wrk), target >= 0.95:")
    for name, ratios in results.items():
        mean, low, high = interval(ratios)
        print(
            f"  {name:6s} median {statistics.median(ratios):.3f}, mean {mean:.3f} "
            f"(95% CI {low:.3f}-{high:.3f}, t over {len(ratios)} ABBA rounds), "
            f"min {min(ratios):.3f}, max {max(ratios):.3f}"
        )


if __name__ == "__main__":
    main()
