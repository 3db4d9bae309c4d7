"""What the database saw during a trial: its connections (the trial's and everyone's), sampled
through the harness's own connection, and where the database server's processes are."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from poolbench.measure.base import Sampler

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


# A window too short to hold this many samples says nothing about the mean in it.
MIN_WINDOW_SAMPLES = 3


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
