"""The trial list and the trial page: the latency distribution, the timeline, the errors, and the pool,
database and CPU figures as labelled tables (poolbench/results/pages.py)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from poolbench.admin.common import TRIAL_COLUMNS, PageContextMixin, ReadOnlyMixin, TrialColumns
from poolbench.models import Trial
from poolbench.results import pages


@admin.register(Trial)
class TrialAdmin(PageContextMixin, ReadOnlyMixin, TrialColumns, admin.ModelAdmin):
    list_display = ("__str__", "sweep_link", *TRIAL_COLUMNS[2:])
    list_filter = ("status", "mode", "sweep__vendor", "load_bound", "workers", "threads")
    search_fields = ("error_text", "sweep__target", "sweep__alias")
    list_select_related = ("sweep",)
    change_form_template = "admin/poolbench/trial/change_form.html"
    # The measured figures are shown formatted, in the page's own sections (pages.trial_context); what is
    # left here are the settings, and the stored JSON as it is, collapsed, for whoever wants every digit.
    fieldsets = (
        (None, {"fields": ("sweep", ("index", "repeat", "status"), ("started_at", "finished_at"), "notes")}),
        ("Configuration", {"fields": (
            ("mode", "pool_size", "pool_min", "max_overflow"), ("pool_timeout", "conn_max_age"),
            ("workers", "threads", "max_db_connections", "users"),
        )}),
        ("Stored as measured (JSON)", {"classes": ("collapse",), "fields": (
            "pool_stats", "db_stats", "cpu", "timing", "overhead", "endpoints", "response_times", "timeline",
        )}),
    )  # fmt: skip

    def page_context(self, trial: Any) -> dict[str, Any]:
        return pages.trial_context(trial)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [f.name for f in Trial._meta.fields]

    @admin.display(description="sweep", ordering="sweep")
    def sweep_link(self, t: Trial) -> str:
        url = reverse("admin:poolbench_sweep_change", args=[t.sweep_id])
        return format_html('<a href="{}">#{}</a>', url, t.sweep_id)
