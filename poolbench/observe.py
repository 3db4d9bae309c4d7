"""Sampling during a trial's load: what the database saw (connections) and the CPU of each party."""

from __future__ import annotations

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
    ):
        super().__init__(interval)
        self.connect = connect
        self.vendor = vendor
        self.application_name = application_name
        self.database = database
        self.user = user
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


class ProcessCPU(Sampler):
    """CPU use (in cores: 1.0 = one core busy) of process trees, by role."""

    def __init__(self, roots: Callable[[], dict[str, list[int]]], interval: float = 0.5):
        super().__init__(interval)
        self.roots = roots
        self.series: dict[str, list[float]] = {}
        self._procs: dict[int, Any] = {}
        self._last = 0.0

    def sample(self) -> float | None:
        import psutil

        now = time.monotonic()
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
            if self._last:
                self.series.setdefault(role, []).append(round(busy, 3))
        self._last = now
        return None

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for role, values in self.series.items():
            if values:
                out[role] = {"mean_cores": round(sum(values) / len(values), 3), "peak_cores": max(values)}
        return out
