"""The probe: a view that reads the one-row table, served only by poolbench's trial server."""

from __future__ import annotations

from django.db import connections
from django.http import HttpRequest, JsonResponse

from .models import Probe

_SLEEP_SQL = {
    "postgresql": "SELECT id, testcol, pg_sleep(%s) FROM poolbench_probe",
    "mysql": "SELECT id, testcol, SLEEP(%s) AS slept FROM poolbench_probe",
}


def probe(request: HttpRequest, *, alias: str = "default", delay_ms: float = 0) -> JsonResponse:
    """Return the probe table's rows as JSON; with ``delay_ms`` the query holds its connection that long."""
    if delay_ms:
        vendor = connections[alias].vendor
        sql = _SLEEP_SQL.get(vendor)
        if sql is None:
            raise ValueError(f"--query-delay-ms is not supported on {vendor}")
        rows = [{"id": p.id, "testcol": p.testcol} for p in Probe.objects.using(alias).raw(sql, [delay_ms / 1000])]
    else:
        rows = list(Probe.objects.using(alias).values("id", "testcol"))
    return JsonResponse({"rows": rows})
