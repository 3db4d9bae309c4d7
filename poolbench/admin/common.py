"""What the sweep and trial pages share: read-only, and the trial columns of the inline and the list."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html

from poolbench.models import Trial
from poolbench.results.pages import host_cell, lag_cell
from poolbench.results.tables import cpu_cell


class ReadOnlyMixin:
    """Results are measurements: nobody adds, edits or deletes them through the admin."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


TRIAL_COLUMNS = (
    "trial_link", "config", "status", "server", "users", "requests", "rps_display", "p50", "p95", "p99",
    "failures", "failure_pct_display", "peak_conns", "mean_conns", "wait_ms", "db_ms", "cores",
    "start_s", "load_bound", "host_cpu", "load_lag",
)  # fmt: skip


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _fine_ms(value: float | None) -> str:
    # Pool waits are often fractions of a millisecond: two significant digits below 10 ms.
    if value is None:
        return "-"
    return f"{value:.2g}" if value < 10 else f"{value:,.0f}"


class PageContextMixin:
    """A change page with poolbench's own sections: ``page_context(obj)`` adds them to the context."""

    def page_context(self, obj: Any) -> dict[str, Any]:
        raise NotImplementedError

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        obj = self.get_object(request, unquote(object_id))  # type: ignore[attr-defined]
        if obj is not None:
            extra_context = {**(extra_context or {}), **self.page_context(obj)}
        return super().change_view(request, object_id, form_url, extra_context)  # type: ignore[misc]


class TrialColumns:
    """Display columns shared by the inline and the trial list."""

    @admin.display(description="#", ordering="index")
    def trial_link(self, t: Trial) -> str:
        url = reverse("admin:poolbench_trial_change", args=[t.pk])
        return format_html('<a href="{}" title="trial details">{}</a>', url, t.index)

    @admin.display(description="config")
    def config(self, t: Trial) -> str:
        return t.label

    @admin.display(description="server")
    def server(self, t: Trial) -> str:
        return f"{t.workers}×{t.threads}"

    @admin.display(description="req/s", ordering="rps")
    def rps_display(self, t: Trial) -> str:
        return format_html('<span class="pb-rps" data-rps="{}">{}</span>', repr(t.rps), f"{t.rps:,.1f}")

    @admin.display(description="p50 ms", ordering="latency_p50_ms")
    def p50(self, t: Trial) -> str:
        return _ms(t.latency_p50_ms)

    @admin.display(description="p95 ms", ordering="latency_p95_ms")
    def p95(self, t: Trial) -> str:
        return _ms(t.latency_p95_ms)

    @admin.display(description="p99 ms", ordering="latency_p99_ms")
    def p99(self, t: Trial) -> str:
        return _ms(t.latency_p99_ms)

    @admin.display(description="fail %", ordering="failure_pct")
    def failure_pct_display(self, t: Trial) -> str:
        return f"{t.failure_pct:.1f}"

    @admin.display(description="peak conns", ordering="peak_connections")
    def peak_conns(self, t: Trial) -> Any:
        return "-" if t.peak_connections is None else t.peak_connections

    @admin.display(description="mean conns", ordering="mean_connections")
    def mean_conns(self, t: Trial) -> str:
        return "-" if t.mean_connections is None else f"{t.mean_connections:.1f}"

    @admin.display(description="pool wait ms", ordering="pool_wait_mean_ms")
    def wait_ms(self, t: Trial) -> str:
        # Measured inside the pool (server/timing.py); rows from before the split: the older timer.
        return _fine_ms(t.pool_wait_mean_ms if t.pool_wait_mean_ms is not None else t.acquire_mean_ms)

    @admin.display(description="db ms", ordering="db_mean_ms")
    def db_ms(self, t: Trial) -> str:
        return _fine_ms(t.db_mean_ms)

    @admin.display(description="cpu load/srv/db", ordering="server_cores")
    def cores(self, t: Trial) -> str:
        return cpu_cell(t)

    @admin.display(description="start s", ordering="server_start_s")
    def start_s(self, t: Trial) -> str:
        return "-" if t.server_start_s is None else f"{t.server_start_s:.1f}"

    @admin.display(description="host cores", ordering="host_cores")
    def host_cpu(self, t: Trial) -> str:
        # The whole machine's CPU in the window; "saturated": the figures may be the host's limit.
        return host_cell(t)

    @admin.display(description="load lag ms mean/p99/max", ordering="load_lag_ms")
    def load_lag(self, t: Trial) -> str:
        return lag_cell(t)
