"""Sampling during a trial's load: what the database saw (connections) and the CPU of each party."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

DB_SAMPLE_SQL = {
    # The trial server's connections carry this trial's application_name: (ours, everyone's).
    "postgresql": (
        "SELECT count(*) FILTER (WHERE application_name = %s AND datname = current_database()), count(*) "
        "FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
    ),
    # MySQL/MariaDB cannot tag a connection: the trial's are the ones to this database, as this user,
    # that were not there before the trial started (their ids are kept apart). Threads_connected counts
    # everyone's, this sampler's included.
    "mysql": (
        "SELECT ID, USER, DB FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID()",
        "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = %s",
    ),
}
# Connections opened so far: PostgreSQL counts sessions per database (14+); MySQL/MariaDB only for the
# whole server (status variable Connections), so other clients' connections are in it too.
SESSIONS_SQL = {
    "postgresql": "SELECT sessions FROM pg_stat_database WHERE datname = current_database()",
    "mysql": (
        "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'CONNECTIONS'"
    ),
}


MIN_WINDOW_SAMPLES = 3


class Sampler:
    """Calls ``sample()`` every ``interval`` seconds in a thread until stopped; keeps the values."""

    def __init__(self, interval: float = 0.25):
        self.interval = interval
        self.values: list[float] = []
        self.error: str = ""
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    def setup(self) -> None:  # in the sampling thread
        pass

    def sample(self) -> float | None:
        raise NotImplementedError

    def teardown(self) -> None:  # in the sampling thread
        pass

    def _run(self) -> None:
        try:
            try:
                self.setup()
            finally:
                self._ready.set()
            while True:
                value = self.sample()
                if value is not None:
                    self.values.append(value)
                if self._stop.wait(self.interval):
                    break
        except Exception as exc:  # a sampler must never stop a trial
            self.error = " ".join(str(exc).split())
        finally:
            try:
                self.teardown()
            except Exception:
                pass

    def start(self, *, wait_setup: bool = False, timeout: float = 10.0) -> Sampler:
        """Start sampling; with ``wait_setup``, return once ``setup()`` has run (or failed)."""
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
        self._thread.start()
        if wait_setup:
            self._ready.wait(timeout)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


class DatabaseConnections(Sampler):
    """Concurrent connections as the database server counts them, through the harness's own connection.

    ``ours`` are the trial server's connections: on PostgreSQL those tagged with ``application_name``
    in ``pg_stat_activity``; on MySQL/MariaDB those in ``information_schema.PROCESSLIST`` for
    ``database``/``user`` that were not open before the trial (so the results database's connection and
    other clients' older ones are left out). ``Threads_connected`` (everyone's connections) and
    ``Max_used_connections`` (the server's high-water mark since it started) are kept beside them.
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        vendor: str,
        *,
        application_name: str = "",
        database: str = "",
        user: str = "",
        interval: float = 0.25,
        embedded: bool = False,
    ):
        super().__init__(interval)
        self.connect = connect
        self.vendor = vendor
        self.application_name = application_name
        self.database = database
        self.user = user
        self.embedded = embedded
        # The database server's processes, for ProcessCPU (read from its thread).
        self.db_scope = "unknown: not looked up"
        self.db_pids: list[int] = []
        self._find_pids: Callable[[Any], list[int]] | None = None
        self.conn: Any = None
        self.times: list[float] = []
        self.all_values: list[float] = []
        self.before_ids: set[int] = set()
        self.max_used_before: int | None = None
        self.max_used_after: int | None = None
        self.sessions: list[int | None] = [None, None]

    def _sessions(self) -> int | None:
        try:
            with self.conn.cursor() as cur:
                cur.execute(SESSIONS_SQL[self.vendor])
                row = cur.fetchone()
            return int(row[0]) if row and row[0] is not None else None
        except Exception:  # PostgreSQL before 14 has no sessions column
            return None

    def setup(self) -> None:
        self.conn = self.connect()
        self.conn.ensure_connection()
        self.sessions[0] = self._sessions()
        try:
            self.db_scope, self._find_pids = database_processes(
                self.conn, self.vendor, self.embedded, self.application_name
            )
        except Exception as exc:  # CPU of the database is a nice-to-have, never a reason to stop
            self.db_scope = f"unknown: {' '.join(str(exc).split())[:200]}"
        if self.vendor == "mysql":
            self.max_used_before = self._status("MAX_USED_CONNECTIONS")
            with self.conn.cursor() as cur:
                cur.execute(DB_SAMPLE_SQL["mysql"][0])
                self.before_ids = {int(row[0]) for row in cur.fetchall()}

    def _status(self, name: str) -> int:
        with self.conn.cursor() as cur:
            cur.execute(DB_SAMPLE_SQL["mysql"][1], [name])
            return int(cur.fetchone()[0])

    def _read(self) -> tuple[int, int]:
        """(the trial's connections, everyone's connections) now."""
        with self.conn.cursor() as cur:
            if self.vendor == "postgresql":
                cur.execute(DB_SAMPLE_SQL["postgresql"], [self.application_name])
                ours, everyone = cur.fetchone()
                return int(ours), int(everyone)
            cur.execute(DB_SAMPLE_SQL["mysql"][0])
            rows = cur.fetchall()
        ours = sum(
            1
            for ident, user, db in rows
            if int(ident) not in self.before_ids
            and (not self.database or db == self.database)
            and (not self.user or user == self.user)
        )
        return ours, self._status("THREADS_CONNECTED")

    def sample(self) -> float | None:
        if self._find_pids is not None:
            with self.conn.cursor() as cur:
                self.db_pids = self._find_pids(cur)
        ours, everyone = self._read()
        self.times.append(time.time())
        self.all_values.append(everyone)
        return ours

    def teardown(self) -> None:
        if self.conn is not None:
            try:
                self.sessions[1] = self._sessions()
                if self.vendor == "mysql":
                    self.max_used_after = self._status("MAX_USED_CONNECTIONS")
            finally:
                self.conn.close()

    def result(self, window: tuple[float | None, float | None] = (None, None)) -> dict[str, Any]:
        """Peak and mean of the trial's connections; the mean over the measured ``window`` (epoch
        seconds) when given, so that the warm-up's ramp does not lower it."""
        out = summarize_connections(
            self.times,
            self.values,
            self.all_values,
            window=window,
            counted=(
                "pg_stat_activity, application_name"
                if self.vendor == "postgresql"
                else "information_schema.PROCESSLIST, new connections to the database"
            ),
            max_used=(self.max_used_before, self.max_used_after),
            error=self.error,
        )
        before, after = self.sessions
        if before is not None and after is not None:
            # From the sampler's start to its end: the warm-up is in it, the measured window too.
            out["new_connections"] = max(0, after - before)
            out["new_connections_counted"] = (
                "pg_stat_database.sessions"
                if self.vendor == "postgresql"
                else "status Connections (whole server)"
            )
        return out


def summarize_connections(
    times: list[float],
    ours: list[float],
    everyone: list[float],
    *,
    window: tuple[float | None, float | None] = (None, None),
    counted: str = "",
    max_used: tuple[int | None, int | None] = (None, None),
    error: str = "",
) -> dict[str, Any]:
    """Figures of the connection samples: peak over the whole trial, peak and mean in the window."""
    out: dict[str, Any] = {"samples": len(ours)}
    if ours:
        start, end = window
        inside = [
            v
            for t, v in zip(times, ours, strict=True)
            if (start is None or t >= start) and (end is None or t <= end)
        ]
        # A window too short to hold a few samples says nothing: fall back to the whole trial.
        over_window = len(inside) >= MIN_WINDOW_SAMPLES
        inside = inside if over_window else list(ours)
        out["peak_connections"] = int(max(ours))
        out["window_peak_connections"] = int(max(inside))
        out["mean_connections"] = round(sum(inside) / len(inside), 2)
        out["mean_over"] = "measured window" if over_window else "whole trial (window too short)"
        out["window_samples"] = len(inside) if over_window else 0
        out["peak_all_connections"] = int(max(everyone))
        out["counted"] = counted
    before, after = max_used
    if after is not None:
        out["max_used_connections"] = after
        # The server's high-water mark since it started: it only says something about this trial
        # when the trial raised it.
        out["max_used_raised"] = before is not None and after > before
    if error:
        out["error"] = error
    return out


# A Locust process that wanted at least this share of one core (running or waiting for a CPU) was
# saturated: it could not send requests any faster, whatever the pool did. Locust warns at 90% too.
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

    def _demand(self, pid: int, now: float) -> tuple[float, float] | None:
        stat = schedstat(pid)
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
                    demand = self._demand(proc.pid, now)
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


def _trial_backends(application_name: str) -> Callable[[Any], list[int]]:
    def pids(cur: Any) -> list[int]:
        cur.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND datname = current_database()",
            [application_name],
        )
        return [int(row[0]) for row in cur.fetchall()]

    return pids


def database_processes(
    conn: Any, vendor: str, embedded: bool, application_name: str = ""
) -> tuple[str, Callable[[Any], list[int]] | None]:
    """How to find the database server's processes from this machine, through the harness connection.

    Returns (scope, pids): ``pids(cursor)`` gives the pids to sample now, or None with the reason in
    ``scope`` when the server is not visible here (another host, another container, no permission).
    """
    import psutil

    with conn.cursor() as cur:
        if vendor == "postgresql":
            cur.execute("SELECT pg_backend_pid()")
            backend = int(cur.fetchone()[0])
            try:
                proc = psutil.Process(backend)
                name = proc.name()
            except psutil.Error:
                return "unknown: the server's processes are not visible from this machine", None
            if "postgres" not in name:
                return f"unknown: pid {backend} here is {name!r}, not the server (another host?)", None
            if embedded:
                postmaster = proc.parent()
                if postmaster is None:
                    return "unknown: no postmaster", None
                pid = postmaster.pid
                return "the embedded server's postmaster and all its processes", lambda cur: [pid]
            # A shared server: only the backends that serve this trial (tagged by application_name).
            if not application_name:
                return "unknown: the trial's connections are not tagged", None
            return f"the trial's own backends (application_name {application_name})", _trial_backends(
                application_name
            )
        cur.execute("SELECT @@pid_file")
        row = cur.fetchone()
    pid = None
    try:
        with open(str(row[0]), encoding="ascii") as fh:
            pid = int(fh.read().strip())
    except (OSError, ValueError, TypeError):
        candidates = [
            p.pid for p in psutil.process_iter(["name"]) if p.info["name"] in ("mariadbd", "mysqld")
        ]
        pid = candidates[0] if len(candidates) == 1 else None
    if pid is None or not psutil.pid_exists(pid):
        return "unknown: the server's process is not visible from this machine", None
    return "the whole server process (shared by every client)", lambda cur: [pid]
