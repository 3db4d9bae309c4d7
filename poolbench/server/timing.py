"""Where each request's time goes inside a trial server's worker. Runs in the trial server only.

Per request, in the thread that serves it (wire.SPLIT_PARTS, which add up to the time in the server):

- ``queue``: queued in the server before Django sees it: from gunicorn gthread handing the connection to
  its thread pool (a new connection accepted, or a kept-alive one readable again) to the handler starting;
- ``pool_wait``: blocked waiting for a free connection, timed inside the pool (psycopg_pool's
  ``WaitingClient.wait``, the interval its own ``requests_wait_ms`` counts; SQLAlchemy QueuePool's queue
  ``get``), not around ``DatabaseWrapper.connect()``;
- ``connect``: opening physical connections in the request's thread (the driver's ``connect``: no pool,
  persistent connections, QueuePool's overflow), off the CPU; psycopg_pool opens its connections in
  background threads, which no request waits for except through ``pool_wait``;
- ``sql``: in ``cursor.execute()`` off the CPU: the statements' round trips;
- ``python``: the thread's own CPU time (``time.thread_time()``), wherever it was spent;
- ``gil``: the rest of the wall time: runnable but waiting for a CPU or for the GIL.

The older parts (``acquire``: all of ``connect()``, ``db``: all of ``execute()``, ``app``: the rest) are kept.
"""

from __future__ import annotations

import sys
import threading
import time
from time import perf_counter, thread_time
from typing import Any

from poolbench.wire import SPLIT_PARTS, TIMING_PARTS

ALL_PARTS = (*TIMING_PARTS, *SPLIT_PARTS)


def bucket(ms: float) -> str:
    """Histogram key: two significant digits (at most 5% off), so a worker keeps ~100 keys per decade."""
    return "0" if ms <= 0 else f"{float(f'{ms:.2g}'):g}"


class Timing:
    """Where each request's time went inside one worker. Sums and histograms only, never a list per
    request. ``lock`` also guards the moment the measured window starts (Collector.mark_window)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.local = threading.local()
        self.queue_timed = False  # gunicorn gthread's hand-over is timestamped (instrument_server)
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self._reset()

    def _reset(self) -> None:
        self.requests = 0
        self.acquires = 0
        self.queries = 0
        self.pool_waits = 0  # requests that had to queue in the pool
        self.opens = 0  # physical connections opened by request threads
        self.sums = {part: 0.0 for part in ALL_PARTS}
        self.maxes = {part: 0.0 for part in ALL_PARTS}
        self.hists: dict[str, dict[str, int]] = {part: {} for part in ALL_PARTS}
        self.since = time.time()

    def begin(self) -> None:
        local = self.local
        local.active = True
        local.acquire = local.db = local.db_cpu = local.pool_wait = local.open = local.open_cpu = 0.0
        local.acquires = local.queries = local.pool_waits = local.opens = 0
        local.start = perf_counter()
        local.cpu = thread_time()
        queued, local.queued = getattr(local, "queued", None), None
        local.queue = max(0.0, local.start - queued) if queued is not None else 0.0

    def add_acquire(self, seconds: float) -> None:
        local = self.local
        if getattr(local, "active", False):
            local.acquire += seconds
            local.acquires += 1

    def add_open(self, seconds: float, cpu: float) -> None:
        local = self.local
        if getattr(local, "active", False):
            local.open += seconds
            local.open_cpu += cpu
            local.opens += 1

    def add_pool_wait(self, seconds: float) -> None:
        local = self.local
        if getattr(local, "active", False):
            local.pool_wait += seconds
            local.pool_waits += 1

    def add_db(self, seconds: float, cpu: float = 0.0) -> None:
        local = self.local
        if getattr(local, "active", False):
            local.db += seconds
            local.db_cpu += cpu
            local.queries += 1

    def end(self) -> None:
        local = self.local
        if not getattr(local, "active", False):
            return
        local.active = False
        values = split(local, perf_counter(), thread_time())
        with self.lock:
            self.requests += 1
            self.acquires += local.acquires
            self.queries += local.queries
            self.pool_waits += local.pool_waits
            self.opens += local.opens
            for part, ms in values.items():
                self.sums[part] += ms
                if ms > self.maxes[part]:
                    self.maxes[part] = ms
                hist = self.hists[part]
                key = bucket(ms)
                hist[key] = hist.get(key, 0) + 1

    def execute_wrapper(self, execute: Any, sql: Any, params: Any, many: bool, context: Any) -> Any:
        t0, c0 = perf_counter(), thread_time()
        try:
            return execute(sql, params, many, context)
        finally:
            self.add_db(perf_counter() - t0, thread_time() - c0)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "since": self.since,
                "requests": self.requests,
                "acquires": self.acquires,
                "queries": self.queries,
                "pool_waits": self.pool_waits,
                "opens": self.opens,
                "queue_timed": self.queue_timed,
                "sums": dict(self.sums),
                "maxes": dict(self.maxes),
                "hists": {part: dict(h) for part, h in self.hists.items()},
            }


def split(local: Any, now: float, cpu_now: float) -> dict[str, float]:
    """One request's parts in ms, from its thread's accumulators (``local``) at its end."""
    ms = 1000.0
    total = (now - local.start) * ms
    acquire, db, pool_wait = local.acquire * ms, local.db * ms, local.pool_wait * ms
    python = max(0.0, (cpu_now - local.cpu) * ms)
    # Each wall-clock part without the thread's own CPU inside it: that CPU is in `python` already.
    connect = max(0.0, (local.open - local.open_cpu) * ms)
    sql = max(0.0, db - local.db_cpu * ms)
    gil = max(0.0, total - pool_wait - connect - sql - python)
    return {
        "acquire": acquire, "db": db, "app": max(0.0, total - acquire - db), "total": total,
        "queue": local.queue * ms, "pool_wait": pool_wait, "connect": connect, "sql": sql,
        "python": python, "gil": gil,
    }  # fmt: skip


def instrument(alias: str, timing: Timing, mode: str = "") -> None:
    """Time ``alias``'s DatabaseWrapper.connect() (taking a connection from the pool or opening one), the
    pool's own wait for ``mode``, and the server's queue (gunicorn gthread)."""
    from django.db import connections

    cls = type(connections[alias])
    if not getattr(cls, "_poolbench_timed", False):
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
        _time_driver_connect(connections[alias].vendor, timing)
    if mode == "pool":
        from psycopg_pool.pool import WaitingClient

        _time_method(WaitingClient, "wait", timing)
    elif mode == "queuepool":
        from sqlalchemy.util.queue import Queue

        _time_method(Queue, "get", timing)
    timing.queue_timed = instrument_server(timing)


def _time_method(cls: type, name: str, timing: Timing) -> None:
    """Add the wall time of ``cls.name`` to the calling request's pool wait (request threads only: the
    pool's background threads are not serving a request, and Timing ignores them)."""
    original = getattr(cls, name)
    if getattr(original, "_poolbench_wait", False):
        return

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            timing.add_pool_wait(perf_counter() - t0)

    timed._poolbench_wait = True  # type: ignore[attr-defined]
    setattr(cls, name, timed)


def _time_driver_connect(vendor: str, timing: Timing) -> None:
    """Time the driver's own connect (a new physical connection) in the request threads."""
    if vendor == "postgresql":
        import psycopg

        # Django calls psycopg.connect (a bound classmethod taken at import), psycopg_pool Connection.connect.
        targets = [(psycopg, "connect")]
    elif vendor == "mysql":
        import MySQLdb

        targets = [(MySQLdb, "connect")]
    else:
        return
    for owner, name in targets:
        original = getattr(owner, name)
        if getattr(original, "_poolbench_open", False):
            continue

        def opened(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            t0, c0 = perf_counter(), thread_time()
            try:
                return _original(*args, **kwargs)
            finally:
                timing.add_open(perf_counter() - t0, thread_time() - c0)

        opened._poolbench_open = True  # type: ignore[attr-defined]
        setattr(owner, name, opened)


def instrument_server(timing: Timing) -> bool:
    """Timestamp each connection when gunicorn's gthread worker hands it to its thread pool, and pass
    the stamp to the thread that handles it. False when this process is not a gthread worker."""
    module = sys.modules.get("gunicorn.workers.gthread")
    worker = getattr(module, "ThreadWorker", None)
    if worker is None or not hasattr(worker, "enqueue_req") or not hasattr(worker, "handle"):
        return False
    if getattr(worker, "_poolbench_queue", False):
        return True
    enqueue, handle = worker.enqueue_req, worker.handle

    def enqueue_req(self: Any, conn: Any) -> Any:
        conn._poolbench_queued = perf_counter()
        return enqueue(self, conn)

    def handle_conn(self: Any, conn: Any) -> Any:
        timing.local.queued = getattr(conn, "_poolbench_queued", None)
        return handle(self, conn)

    worker.enqueue_req, worker.handle = enqueue_req, handle_conn
    worker._poolbench_queue = True
    return True
