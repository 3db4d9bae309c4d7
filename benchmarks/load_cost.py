"""The load generator's CPU per request: poolbench's default scenario, Locust's FastHttpUser, and wrk.

    .venv/bin/python benchmarks/load_cost.py [--rounds 4] [--duration 5] [--warmup 2] [--size 200]
                                             [--database-url ...]

One trial server (default settings, pool --size) stays up; each load takes turns against it (the order
reversed every round) with 64 users / connections. For Locust the CPU time (user + system, psutil) of
its process is read when the plugin's measured window begins and when its results are written, so the
start-up (importing Locust, about a second of CPU) is left out; for wrk it is the whole run (os.wait4),
which has no start-up to speak of. CPU per request is that CPU time / requests in the window: on a
shared machine it is the CPU the load generator takes from the server for each request it sends.
"""

from __future__ import annotations

import json
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

import psutil
from common import build_options, machine, parser, setup_django

HERE = Path(__file__).resolve().parent
WRK = shutil.which("wrk") or "/usr/bin/wrk"


def locust_cost(scenario: Path, url: str, state: Path, args, tag: str) -> tuple[float, float]:
    """(req/s, CPU µs per request) of one Locust run in the plugin's measured window."""
    from poolbench.sweep.load import PLUGIN

    out = state / f"{tag}.json"
    cmd = [
        sys.executable, "-m", "locust", "-f", f"{PLUGIN},{scenario}", "--headless", "-u", str(args.users),
        "-r", str(args.users), "-t", f"{int(args.warmup + args.duration) + 30}s", "--host", url,
        "--only-summary", "--loglevel", "WARNING", "--stop-timeout", "0",
        "--poolbench-warmup", f"{args.warmup:g}", "--poolbench-duration", f"{args.duration:g}",
        "--poolbench-out", str(out),
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "POOLBENCH_PATHS"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=state)
    try:
        ps = psutil.Process(proc.pid)
        deadline = time.monotonic() + args.warmup + args.duration + 60
        while not Path(f"{out}.measuring").exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        before = sum(ps.cpu_times()[:2])
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        after = sum(ps.cpu_times()[:2])
    finally:
        proc.kill()
        proc.wait()
    data = json.loads(out.read_text(encoding="utf-8"))
    requests = data["total"]["num_requests"]
    return requests / (data["measure_end"] - data["measure_start"]), 1e6 * (after - before) / requests


def wrk_cost(url: str, args) -> tuple[float, float]:
    proc = subprocess.Popen(
        [WRK, "-t", "2", "-c", str(args.users), "-d", f"{round(args.duration)}s", url + "/__poolbench__/probe"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    text = proc.stdout.read()
    _, _, usage = os.wait4(proc.pid, 0)
    requests = int(re.search(r"(\d+) requests in", text).group(1))
    return float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)), 1e6 * (
        usage.ru_utime + usage.ru_stime
    ) / requests


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--users", type=int, default=64)
    p.add_argument("--size", default="200")
    args = p.parse_args()
    setup_django(args.database_url)
    from poolbench.sweep import children
    from poolbench.sweep.load import DEFAULT_LOCUSTFILE
    from poolbench.sweep.run import prepare, trial_config
    from poolbench.sweep.server import TrialServer

    options = build_options(["--sizes", args.size])
    spec = options.plan.specs[0]
    state = Path(tempfile.mkdtemp(prefix="poolbench-load-cost-"))
    loads = {
        "poolbench (default scenario)": DEFAULT_LOCUSTFILE,
        "FastHttpUser": HERE / "scenarios" / "fasthttp_probe.py",
        "wrk": None,
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in loads}
    server = None
    try:
        prepare(options)
        server = TrialServer(
            config=trial_config(spec, options, secrets.token_urlsafe(16)),
            workers=spec.workers, threads=spec.threads, state_dir=state, bind=options.bind,
        )  # fmt: skip
        server.start()
        print(f"machine: {machine()}")
        print(f"server: {spec.workers} x {spec.threads}, {spec.label}; {args.users} users / connections")
        for r in range(args.rounds):
            for name in list(loads) if r % 2 == 0 else list(loads)[::-1]:
                scenario = loads[name]
                figures = (
                    wrk_cost(server.url, args)
                    if scenario is None
                    else locust_cost(
                        scenario, server.url, state, args, f"r{r}-{len(results[name])}-{scenario.stem}"
                    )
                )
                results[name].append(figures)
                print(
                    f"  round {r + 1} {name:30s} {figures[0]:8.1f} req/s {figures[1]:7.1f} µs CPU / request"
                )
    finally:
        if server is not None:
            server.stop()
        children.stop_all()
        options.target.close()
        shutil.rmtree(state, ignore_errors=True)
    print(f"\nload generator CPU per request, median over {args.rounds} rounds (min-max):")
    for name, values in results.items():
        cpu = [v[1] for v in values]
        print(f"  {name:30s} {statistics.median(cpu):7.1f} µs ({min(cpu):.1f}-{max(cpu):.1f})")


if __name__ == "__main__":
    main()
