"""The CPU of each party during a trial (Locust, the trial server, the database, the host), and how
much of a core each process wanted: running or waiting for one."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from poolbench.measure.base import Sampler

# A Locust process that wanted at least this share of one core (running or waiting for a CPU) was
# saturated: it could not send requests any faster, whatever the pool did.
LOAD_BOUND_CORES = 0.9


def schedstat(pid: int) -> tuple[float, float] | None:
    """(seconds on a CPU, seconds runnable but waiting for one) summed over a process's threads.

    Linux /proc/<pid>/task/*/schedstat; None where unavailable. The waiting time is what shows a
    CPU-starved process: it wants a core and does not get it, so its own CPU use looks low.
    """
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    run = wait = 0
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", encoding="ascii") as fh:
                fields = fh.read().split()
            run += int(fields[0])
            wait += int(fields[1])
        except (OSError, ValueError, IndexError):
            continue
    return run / 1e9, wait / 1e9


class ProcessCPU(Sampler):
    """CPU use (in cores: 1.0 = one core busy) of process trees by role, the busiest single process
    of each role with its demand (running + waiting for a CPU), and the whole host's.

    ``measuring`` says whether the measured window has begun: samples before it (Locust's own
    start-up, the warm-up) prime the counters but are not kept.
    """

    def __init__(
        self,
        roots: Callable[[], dict[str, list[int]]],
        interval: float = 0.5,
        measuring: Callable[[], bool] | None = None,
    ):
        super().__init__(interval)
        self.roots = roots
        self.measuring = measuring or (lambda: True)
        self.series: dict[str, list[float]] = {}
        self.per_process: dict[str, dict[int, list[tuple[float, float]]]] = {}
        self.host: list[float] = []
        self._procs: dict[int, Any] = {}
        self._sched: dict[int, tuple[float, float, float]] = {}
        self._last = 0.0
        self._was_measuring = False

    def _demand(self, pid: int) -> tuple[float, float] | None:
        stat = schedstat(pid)
        # The time of this read, not of the sample's start: walking the process trees takes a varying
        # part of a second on a busy machine, and an interval timed from the sample's start would not
        # be the one the counters cover.
        now = time.monotonic()
        if stat is None:
            return None
        before = self._sched.get(pid)
        self._sched[pid] = (now, *stat)
        if before is None or now <= before[0]:
            return None
        elapsed = now - before[0]
        run = max(0.0, stat[0] - before[1]) / elapsed
        wait = max(0.0, stat[1] - before[2]) / elapsed
        return run, run + wait

    def sample(self) -> float | None:
        import psutil

        now = time.monotonic()
        # Keep an interval only if it began inside the window: the one that straddles the warm-up's
        # end would mix Locust's start-up into the window's figures.
        measuring = self.measuring()
        keep = bool(self._last) and self._was_measuring
        self._was_measuring = measuring
        host = psutil.cpu_percent(None) * (os.cpu_count() or 1) / 100.0
        if keep:
            self.host.append(round(host, 3))
        for role, pids in self.roots().items():
            busy = 0.0
            for pid in pids:
                try:
                    root = psutil.Process(pid)
                    tree = [root, *root.children(recursive=True)]
                except psutil.Error:
                    continue
                for proc in tree:
                    known = self._procs.setdefault(proc.pid, proc)
                    try:
                        busy += known.cpu_percent(None) / 100.0
                    except psutil.Error:
                        continue
                    demand = self._demand(proc.pid)
                    if keep and demand is not None:
                        self.per_process.setdefault(role, {}).setdefault(proc.pid, []).append(demand)
            if keep:
                self.series.setdefault(role, []).append(round(busy, 3))
        self._last = now
        return None

    def busiest(self, role: str) -> dict[str, Any] | None:
        """The process of ``role`` with the highest mean demand over the window."""
        best = None
        for pid, values in self.per_process.get(role, {}).items():
            if not values:
                continue
            cores = sum(v[0] for v in values) / len(values)
            demand = sum(v[1] for v in values) / len(values)
            if best is None or demand > best["demand_cores"]:
                best = {
                    "pid": pid,
                    "cores": round(cores, 3),
                    "demand_cores": round(demand, 3),
                    "samples": len(values),
                }
        return best

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for role, values in self.series.items():
            if values:
                out[role] = {"mean_cores": round(sum(values) / len(values), 3), "peak_cores": max(values)}
                top = self.busiest(role)
                if top is not None:
                    out[role]["busiest_process"] = top
        if self.host:
            out["host"] = {
                "mean_cores": round(sum(self.host) / len(self.host), 3),
                "peak_cores": max(self.host),
                "cpu_count": os.cpu_count(),
            }
        if self.error:
            out["error"] = self.error
        return out
