"""Where each request's time goes inside a trial server's worker: waiting for a connection (the pool),
in the database, and the rest. Runs in the trial server only."""

from __future__ import annotations

import threading
import time
from time import perf_counter
from typing import Any

from poolbench.wire import TIMING_PARTS


def bucket(ms: float) -> str:
    """Histogram key: two significant digits (at most 5% off), so a worker keeps ~100 keys per decade."""
    return "0" if ms <= 0 else f"{float(f'{ms:.2g}'):g}"


class Timing:
    """Where each request's time went inside one worker: getting a connection (pool wait), the
    database (execute wrapper), and the rest. Sums and histograms only, never a list per request."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.local = threading.local()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.requests = 0
            self.acquires = 0
            self.queries = 0
            self.sums = {part: 0.0 for part in TIMING_PARTS}
            self.maxes = {part: 0.0 for part in TIMING_PARTS}
            self.hists: dict[str, dict[str, int]] = {part: {} for part in TIMING_PARTS}
            self.since = time.time()

    def begin(self) -> None:
        local = self.local
        local.active = True
        local.acquire = 0.0
        local.db = 0.0
        local.acquires = 0
        local.queries = 0
        local.start = perf_counter()

    def add_acquire(self, seconds: float) -> None:
        local = self.local
        if getattr(local, "active", False):
            local.acquire += seconds
            local.acquires += 1

    def add_db(self, seconds: float) -> None:
        local = self.local
        if getattr(local, "active", False):
            local.db += seconds
            local.queries += 1

    def end(self) -> None:
        local = self.local
        if not getattr(local, "active", False):
            return
        local.active = False
        total = (perf_counter() - local.start) * 1000.0
        acquire, db = local.acquire * 1000.0, local.db * 1000.0
        values = {"acquire": acquire, "db": db, "app": max(0.0, total - acquire - db), "total": total}
        with self.lock:
            self.requests += 1
            self.acquires += local.acquires
            self.queries += local.queries
            for part, ms in values.items():
                self.sums[part] += ms
                if ms > self.maxes[part]:
                    self.maxes[part] = ms
                hist = self.hists[part]
                key = bucket(ms)
                hist[key] = hist.get(key, 0) + 1

    def execute_wrapper(self, execute: Any, sql: Any, params: Any, many: bool, context: Any) -> Any:
        t0 = perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.add_db(perf_counter() - t0)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "since": self.since,
                "requests": self.requests,
                "acquires": self.acquires,
                "queries": self.queries,
                "sums": dict(self.sums),
                "maxes": dict(self.maxes),
                "hists": {part: dict(h) for part, h in self.hists.items()},
            }


def instrument(alias: str, timing: Timing) -> None:
    """Time connection acquisition for ``alias``: DatabaseWrapper.connect() is where Django takes a
    connection from the pool (psycopg_pool.getconn, SQLAlchemy QueuePool) or opens a new one."""
    from django.db import connections

    cls = type(connections[alias])
    if getattr(cls, "_poolbench_timed", False):
        return
    original = cls.connect

    def connect(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.alias != alias:
            return original(self, *args, **kwargs)
        t0 = perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            timing.add_acquire(perf_counter() - t0)

    cls.connect = connect
    cls._poolbench_timed = True
