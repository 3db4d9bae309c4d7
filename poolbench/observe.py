"""Sampling during a trial's load: what the database saw (connections) and the CPU of each party."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

APPLICATION_NAME = "poolbench-trial"

DB_SAMPLE_SQL = {
    # The trial server's own connections: poolbench tags them with application_name.
    "postgresql": (
        "SELECT count(*) FILTER (WHERE application_name = %s), count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    ),
    # MySQL/MariaDB cannot tell whose a connection is: all connections, less those open before the trial.
    "mysql": (
        "SELECT VARIABLE_VALUE, VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
        "WHERE VARIABLE_NAME = 'THREADS_CONNECTED'"
    ),
}


class Sampler:
    """Calls ``sample()`` every ``interval`` seconds in a thread until stopped; keeps the values."""

    def __init__(self, interval: float = 0.25):
        self.interval = interval
        self.values: list[float] = []
        self.error: str = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def setup(self) -> None:  # in the sampling thread
        pass

    def sample(self) -> float | None:
        raise NotImplementedError

    def teardown(self) -> None:  # in the sampling thread
        pass

    def _run(self) -> None:
        try:
            self.setup()
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

    def start(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


class DatabaseConnections(Sampler):
    """Concurrent connections as the database server counts them, through the harness's own connection."""

    def __init__(self, connect: Callable[[], Any], vendor: str, interval: float = 0.25):
        super().__init__(interval)
        self.connect = connect
        self.vendor = vendor
        self.conn: Any = None
        self.max_used_before: int | None = None
        self.max_used_after: int | None = None
        self.baseline = 0.0
        self.all_values: list[float] = []

    def setup(self) -> None:
        self.conn = self.connect()
        self.conn.ensure_connection()
        self.max_used_before = self._max_used()
        if self.vendor == "mysql":
            # Connections that were there before the trial server's (the sampler's own included).
            self.baseline = self._read()[1]

    def _read(self) -> tuple[float, float]:
        with self.conn.cursor() as cur:
            if self.vendor == "postgresql":
                cur.execute(DB_SAMPLE_SQL[self.vendor], [APPLICATION_NAME])
            else:
                cur.execute(DB_SAMPLE_SQL[self.vendor])
            ours, everyone = cur.fetchone()
        return float(ours), float(everyone)

    def _max_used(self) -> int | None:
        if self.vendor != "mysql":
            return None
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'MAX_USED_CONNECTIONS'"
            )
            return int(cur.fetchone()[0])

    def sample(self) -> float | None:
        ours, everyone = self._read()
        self.all_values.append(everyone)
        return max(0.0, ours - self.baseline)

    def teardown(self) -> None:
        if self.conn is not None:
            try:
                self.max_used_after = self._max_used()
            finally:
                self.conn.close()

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {"samples": len(self.values)}
        if self.values:
            out["peak_connections"] = int(max(self.values))
            out["mean_connections"] = round(sum(self.values) / len(self.values), 2)
            out["peak_all_connections"] = int(max(self.all_values))
            out["counted"] = "application_name" if self.vendor == "postgresql" else "threads_connected - baseline"
        if self.max_used_after is not None:
            out["max_used_connections"] = self.max_used_after
        if self.error:
            out["error"] = self.error
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
