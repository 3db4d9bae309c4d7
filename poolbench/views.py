"""The probe: a view that reads the one-row table, served only by poolbench's trial server."""

from __future__ import annotations

import time

from django.db import connections
from django.http import HttpRequest, JsonResponse

from poolbench.models import Probe

# A statement of its own, not a column of the probe's SELECT: a per-row sleep would not run at all
# when the table is empty (a test database flushed between tests, a row deleted by hand).
_SLEEP_SQL = {
    "postgresql": "SELECT pg_sleep(%s)",
    "mysql": "SELECT SLEEP(%s)",
}
# --probe-db-ms: work that keeps the database's CPU busy, ``%s`` units of it (calibrated to the asked
# milliseconds by poolbench.sweep.probes before the sweep).
DB_WORK_SQL = {
    "postgresql": "SELECT sum(i) FROM generate_series(1, %s) AS i",
    "mysql": "SELECT BENCHMARK(%s, SHA1('poolbench'))",
}


def burn_cpu(ms: float) -> int:
    """Run Python for ``ms`` milliseconds of this thread's CPU time (not wall time: waiting for the GIL
    does not count), as a CPU-bound view would. Returns the loop's iterations."""
    end = time.thread_time() + ms / 1000.0
    n = 0
    while time.thread_time() < end:
        for _ in range(200):
            n += 1
    return n


def probe(
    request: HttpRequest, *, alias: str = "default", delay_ms: float = 0, cpu_ms: float = 0, db_work: int = 0
) -> JsonResponse:
    """Return the probe table's rows as JSON. ``delay_ms``: the request holds its connection that much
    longer, in the database (pg_sleep / SLEEP), before the read (I/O-bound); ``cpu_ms``: it first runs that
    much Python, holding no connection (CPU-bound app); ``db_work``: its query makes the database compute that many units
    (database-bound)."""
    if cpu_ms:
        # Before the first query, when the request holds no connection yet: this probe loads the CPU only.
        burn_cpu(cpu_ms)
    conn = connections[alias]
    for value, statements, what in (
        (delay_ms, _SLEEP_SQL, "--query-delay-ms"),
        (db_work, DB_WORK_SQL, "--probe-db-ms"),
    ):
        if not value:
            continue
        sql = statements.get(conn.vendor)
        if sql is None:
            raise ValueError(f"{what} is not supported on {conn.vendor}")
        with conn.cursor() as cur:
            cur.execute(sql, [value / 1000 if statements is _SLEEP_SQL else int(value)])
            cur.fetchall()
    rows = list(Probe.objects.using(alias).values("id", "testcol"))
    return JsonResponse({"rows": rows})
