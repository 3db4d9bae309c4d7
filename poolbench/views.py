"""The probe: a view that reads the one-row table, served only by poolbench's trial server."""

from __future__ import annotations

from django.db import connections
from django.http import HttpRequest, JsonResponse

from poolbench.models import Probe

# A statement of its own, not a column of the probe's SELECT: a per-row sleep would not run at all
# when the table is empty (a test database flushed between tests, a row deleted by hand).
_SLEEP_SQL = {
    "postgresql": "SELECT pg_sleep(%s)",
    "mysql": "SELECT SLEEP(%s)",
}


def probe(request: HttpRequest, *, alias: str = "default", delay_ms: float = 0) -> JsonResponse:
    """Return the probe table's rows as JSON; with ``delay_ms`` the request holds its connection that
    much longer, in the database (pg_sleep / SLEEP), before the read."""
    if delay_ms:
        conn = connections[alias]
        sql = _SLEEP_SQL.get(conn.vendor)
        if sql is None:
            raise ValueError(f"--query-delay-ms is not supported on {conn.vendor}")
        with conn.cursor() as cur:
            cur.execute(sql, [delay_ms / 1000])
            cur.fetchall()
    rows = list(Probe.objects.using(alias).values("id", "testcol"))
    return JsonResponse({"rows": rows})
