"""Fidelity: requests/s measured by poolbench's load (Locust) / requests/s measured by wrk, same server.

    .venv/bin/python benchmarks/fidelity.py [--rounds 3] [--duration 5] [--database-url ...]
                                            [-- more poolbench options]

One trial server with the default settings (workers, threads, pool = the largest default size unless
--size is given) stays up for the whole run; poolbench's load and wrk (/usr/bin/wrk, same number of
connections as Locust users) take turns against it, in ABBA order so that drift hits both alike.
Target: ratio >= 0.95. Below that, the load generator, not the server, sets the figure.
"""

from __future__ import annotations

import re
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from common import build_options, machine, parser, setup_django

WRK = shutil.which("wrk") or "/usr/bin/wrk"


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


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--size", help="Pool size of the server (default: the largest default size).")
    p.add_argument(
        "extra", nargs="*", help="More `manage.py poolbench` options, e.g. --users 100 --threads 8."
    )
    args = p.parse_args()
    setup_django(args.database_url)
    from poolbench.conf import get_config
    from poolbench.measure import stats
    from poolbench.sweep import children
    from poolbench.sweep.load import run_load
    from poolbench.sweep.run import prepare, trial_config
    from poolbench.sweep.server import TrialServer

    size = args.size or str(max(get_config()["SIZES"]))
    options = build_options(
        ["--sizes", size, "--duration", f"{args.duration:g}", "--warmup", f"{args.warmup:g}", *args.extra]
    )
    spec = options.plan.specs[0]
    load = options.load
    state = Path(tempfile.mkdtemp(prefix="poolbench-fidelity-"))
    server = None
    try:
        prepare(options)
        server = TrialServer(
            config=trial_config(spec, options, secrets.token_urlsafe(16)),
            workers=spec.workers, threads=spec.threads, state_dir=state, bind=options.bind,
        )  # fmt: skip
        server.start()
        url = server.url + "/__poolbench__/probe"
        print(f"machine: {machine()}")
        print(
            f"server: {spec.workers} workers x {spec.threads} threads, {spec.label}; "
            f"load: {load.users} users "
            f"(wrk: {load.users} connections, 2 threads), Locust processes {load.processes}; "
            f"{args.warmup:g}s warm-up + {args.duration:g}s per measurement; {options.target.url}"
        )
        wrk_rps(url, load.users, args.warmup)  # warm the server and the pool once
        ratios = []
        for r in range(1, args.rounds + 1):
            figures = {}
            order = ["poolbench", "wrk"] if r % 2 else ["wrk", "poolbench"]
            for tool in order:
                if tool == "wrk":
                    wrk_rps(
                        url, load.users, args.warmup
                    )  # wrk has no warm-up of its own: same warm-up as Locust
                    figures[tool] = wrk_rps(url, load.users, args.duration)
                else:
                    run_dir = Path(tempfile.mkdtemp(dir=state))
                    output = run_load(load, server.url, run_dir)
                    measured = stats.summarize(output)
                    if measured["failures"]:
                        raise SystemExit(f"poolbench's load saw {measured['failures']} failures")
                    figures[tool] = measured["rps"]
                    figures["load_bound"] = bool(
                        output.get("cpu_warning") or output.get("worker_cpu_warning")
                    )
                time.sleep(0.5)
            ratio = figures["poolbench"] / figures["wrk"]
            ratios.append(ratio)
            print(
                f"round {r} ({' then '.join(order)}): poolbench {figures['poolbench']:8.1f} req/s, "
                f"wrk {figures['wrk']:8.1f} req/s, ratio {ratio:.3f}"
                + ("  (Locust reported its CPU saturated)" if figures["load_bound"] else "")
            )
        print(
            f"fidelity (poolbench / wrk): median {statistics.median(ratios):.3f}, "
            f"min {min(ratios):.3f}, max {max(ratios):.3f} over {len(ratios)} rounds (target >= 0.95)"
        )
    finally:
        if server is not None:
            server.stop()
        children.stop_all()
        options.target.close()
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
