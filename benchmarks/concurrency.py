"""Server concurrency on this machine: req/s of the probe for workers x threads x pool size, measured by
poolbench's own load (Locust, default settings) and by wrk against the same server, one after the other.

    .venv/bin/python benchmarks/concurrency.py [--grid 1x8,1x32,1x64,2x8,2x32,3x8] [--sizes 5,10,16,200]
                                               [--users 64] [--duration 3] [--database-url ...]

Used to choose POOLBENCH's default WORKERS/THREADS/USERS (benchmarks/README.md): the default server must
not be what limits a default sweep, and poolbench's load must keep up with it (poolbench / wrk >= 0.95).
The order of the two tools alternates from cell to cell so that drift on a busy machine hits both alike.
"""

from __future__ import annotations

import secrets
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from common import build_options, machine, parser, setup_django
from fidelity import wrk_rps


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--grid", default="1x8,1x32,1x64,2x8,2x32,3x8")
    p.add_argument("--sizes", default=None, help="Pool sizes (default: POOLBENCH SIZES).")
    p.add_argument(
        "--users", default=None, help="Comma-separated Locust user counts (default: POOLBENCH USERS)."
    )
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--locust-processes", default="1")
    args = p.parse_args()
    setup_django(args.database_url)
    from tabulate import tabulate

    from poolbench.conf import get_config
    from poolbench.measure import stats
    from poolbench.sweep import children
    from poolbench.sweep.load import run_load
    from poolbench.sweep.run import prepare, trial_config
    from poolbench.sweep.server import TrialServer

    config = get_config()
    sizes = args.sizes or ",".join(map(str, config["SIZES"]))
    users_list = [int(u) for u in (args.users or str(config["USERS"])).split(",")]
    grid = [tuple(int(x) for x in cell.split("x")) for cell in args.grid.split(",")]
    print(f"machine: {machine()}")
    print(
        f"probe, {args.warmup:g}s warm-up + {args.duration:g}s per measurement, "
        f"Locust processes {args.locust_processes}"
    )
    rows, ratios, n = [], [], 0
    size_list = [int(s) for s in sizes.split(",")]
    options = target = None
    try:
        for users in users_list:
            for workers, threads in grid:
                options = build_options([
                    "--sizes", sizes, "--workers", str(workers), "--threads", str(threads),
                    "--users", str(users),
                    "--duration", f"{args.duration:g}", "--warmup", f"{args.warmup:g}",
                    "--locust-processes", args.locust_processes, "--allow-over-max",
                ])  # fmt: skip
                if target is None:
                    prepare(options)
                    target = options.target
                    print(f"target: {target.url}")
                options.target = target  # one database (embedded: started once) for every cell
                row = [f"{workers} x {threads}", users]
                for spec in options.plan.specs:
                    n += 1
                    state = Path(tempfile.mkdtemp(prefix="poolbench-conc-"))
                    server = TrialServer(
                        config=trial_config(spec, options, secrets.token_urlsafe(16)),
                        workers=workers, threads=threads, state_dir=state,
                    )  # fmt: skip
                    figures = {}
                    try:
                        server.start()
                        url = server.url + "/__poolbench__/probe"
                        for tool in ["poolbench", "wrk"] if n % 2 else ["wrk", "poolbench"]:
                            if tool == "wrk":
                                wrk_rps(url, users, args.warmup)
                                figures[tool] = wrk_rps(url, users, args.duration)
                            else:
                                out = run_load(options.load, server.url, Path(tempfile.mkdtemp(dir=state)))
                                figures[tool] = stats.summarize(out)["rps"]
                            time.sleep(0.3)
                    except RuntimeError as exc:  # a failing cell is reported, the others still run
                        print(f"  {workers}x{threads} {users} users {spec.label}: {exc}", flush=True)
                    finally:
                        server.stop()
                        shutil.rmtree(state, ignore_errors=True)
                    if len(figures) < 2:
                        row.append("error")
                        continue
                    ratio = figures["poolbench"] / figures["wrk"]
                    ratios.append(ratio)
                    row.append(f"{figures['poolbench']:,.0f} / {figures['wrk']:,.0f} ({ratio:.2f})")
                    print(f"  {workers}x{threads} {users} users {spec.label}: {row[-1]}", flush=True)
                rows.append(row)
    finally:
        children.stop_all()
        if target is not None:
            target.close()
    print()
    print("req/s: poolbench / wrk (ratio), same server, one after the other")
    print(
        tabulate(
            rows,
            headers=["workers x threads", "users", *[f"pool {s}" for s in size_list]],
            disable_numparse=True,
        )
    )
    print(
        f"ratio over all cells: median {statistics.median(ratios):.2f}, "
        f"min {min(ratios):.2f}, max {max(ratios):.2f}"
    )


if __name__ == "__main__":
    main()
