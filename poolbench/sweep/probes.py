"""The probe's limits beside --query-delay-ms: --probe-cpu-ms (Python CPU per request, the CPU-bound
app) and --probe-db-ms (database CPU per request, the database-bound case). Their option types, and the
calibration of --probe-db-ms: how many units of work (rows of generate_series, BENCHMARK() rounds) take
about that long on this database, measured once before the first trial."""

from __future__ import annotations

import os
import time
from typing import Any

from poolbench.sweep.plan import PlanError, parse_number
from poolbench.views import DB_WORK_SQL

MAX_PROBE_MS = 10_000  # ten seconds of CPU per request is more than any trial can measure
# Where the calibration starts (about 1-2 ms on a 2-core machine), and its bounds.
START_UNITS = {"postgresql": 20_000, "mysql": 20_000}
MAX_UNITS = 2_000_000_000
CALIBRATION_RUNS = 5
CALIBRATION_ROUNDS = 5  # rescaling rounds at most; it stops within CALIBRATION_CLOSE of the target
CALIBRATION_CLOSE = 0.15


def parse_probe_ms(text: str, option: str) -> float:
    """--probe-cpu-ms / --probe-db-ms: 0 (off) to MAX_PROBE_MS milliseconds."""
    value = parse_number(text, option, allow_zero=True)
    if value > MAX_PROBE_MS:
        raise PlanError(
            f"{option} {text!r} is more than {MAX_PROBE_MS} ms per request; give at most {MAX_PROBE_MS}"
        )
    return value


def check_probe_options(values: dict[str, Any], vendor: str) -> None:
    """The probe options shape poolbench's own probe: refuse them where the probe is not what is loaded."""
    for option in ("--probe-cpu-ms", "--probe-db-ms"):
        if values.get(option[2:].replace("-", "_")) and (values.get("paths") or values.get("locustfile")):
            raise PlanError(
                f"{option} changes poolbench's probe, which --path/--locustfile replace; "
                f"drop {option} or load the probe (no --path, no --locustfile)"
            )
    if values.get("probe_db_ms") and vendor not in DB_WORK_SQL:
        raise PlanError(f"--probe-db-ms is not supported on {vendor}; it needs PostgreSQL or MySQL/MariaDB")


def _time_once(cursor: Any, sql: str, units: int) -> float:
    t0 = time.perf_counter()
    cursor.execute(sql, [units])
    cursor.fetchall()
    return (time.perf_counter() - t0) * 1000.0


def measure(cursor: Any, sql: str, units: int) -> float:
    """Wall time, the fastest of CALIBRATION_RUNS runs, in ms: the least disturbed by the rest of the
    machine (used when the database's processes are not visible from here)."""
    return min(_time_once(cursor, sql, units) for _ in range(CALIBRATION_RUNS))


def task_cpu(pid: int) -> dict[str, float]:
    """Seconds on a CPU of each thread of process ``pid`` (Linux /proc/<pid>/task/*/schedstat)."""
    out: dict[str, float] = {}
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", encoding="ascii") as fh:
                out[tid] = int(fh.read().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            continue
    return out


def measure_cpu(cursor: Any, sql: str, units: int, pid: int) -> float:
    """The database's own CPU time per run, in ms: CALIBRATION_RUNS runs, the thread of the server process
    ``pid`` whose CPU time grew most (a PostgreSQL backend has one; the MySQL thread serving this
    connection). Unlike wall time it does not grow when the machine is busy."""
    before = task_cpu(pid)
    for _ in range(CALIBRATION_RUNS):
        cursor.execute(sql, [units])
        cursor.fetchall()
    after = task_cpu(pid)
    grown = [after[tid] - before.get(tid, 0.0) for tid in after]
    return max(grown, default=0.0) * 1000.0 / CALIBRATION_RUNS


def server_pid(connection: Any, vendor: str) -> int | None:
    """The process that runs this connection's statements, if it is visible from this machine."""
    from poolbench.measure.database import database_processes

    with connection.cursor() as cur:
        if vendor == "postgresql":
            cur.execute("SELECT pg_backend_pid()")
            pid = int(cur.fetchone()[0])
            return pid if "postgres" in _name(pid) else None
    scope, pids = database_processes(connection, vendor, embedded=False)
    if pids is None:
        return None
    with connection.cursor() as cur:
        found = pids(cur)
    return found[0] if found and task_cpu(found[0]) else None


def _name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def calibrate(connection: Any, vendor: str, target_ms: float) -> dict[str, Any]:
    """Units of DB_WORK_SQL[vendor] that take about ``target_ms`` of the database's CPU on ``connection``
    (a DatabaseWrapper, closed afterwards): measured at a start size, scaled linearly and measured again
    until it is close. The database's CPU time is read from /proc when its process is on this machine;
    otherwise the fastest wall time of CALIBRATION_RUNS runs."""
    sql = DB_WORK_SQL[vendor]
    units = START_UNITS[vendor]
    try:
        pid = server_pid(connection, vendor)
        with connection.cursor() as cur:

            def meter(n: int) -> float:
                return measure_cpu(cur, sql, n, pid) if pid else measure(cur, sql, n)

            _time_once(cur, sql, units)  # the first run pays for planning and warming caches
            ms = meter(units)
            for _ in range(CALIBRATION_ROUNDS):
                if abs(ms / target_ms - 1) <= CALIBRATION_CLOSE:
                    break
                units = max(1, min(MAX_UNITS, round(units * target_ms / max(ms, 0.01))))
                ms = meter(units)
    finally:
        connection.close()
    how = "the database's CPU time" if pid else "wall time, the fastest of 5 runs"
    return {"units": units, "measured_ms": round(ms, 3), "target_ms": target_ms, "sql": sql % units,
            "measured_by": how, "server_pid": pid}  # fmt: skip
