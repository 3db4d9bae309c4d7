"""The sweep list, the sweep page (the answer, the by-size table, the charts, the trials), the compare
page and the exports."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from poolbench.admin.common import TRIAL_COLUMNS, PageContextMixin, ReadOnlyMixin, TrialColumns, _ms
from poolbench.models import SizeSummary, Sweep, Trial
from poolbench.results import export, stale
from poolbench.results.tables import vs_best_cell


class ModeFilter(admin.SimpleListFilter):
    """The connection modes a sweep ran (its trials' modes: pool, queuepool, persistent, none)."""

    title = "mode"
    parameter_name = "mode"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        modes = Trial.objects.order_by("mode").values_list("mode", flat=True).distinct()
        return [(m, m) for m in modes]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Sweep]) -> QuerySet[Sweep]:
        if self.value():
            return queryset.filter(pk__in=Trial.objects.filter(mode=self.value()).values("sweep_id"))
        return queryset


SIZE_COLUMNS = (
    "config", "server", "trials", "rps_display", "interval", "vs_best_display", "spread", "cv", "p99", "failure_pct_display",
    "load_bound", "on_plateau", "recommended",
)  # fmt: skip


class SizeSummaryInline(ReadOnlyMixin, admin.TabularInline):
    """The sweep's answer per configuration and size: the median over the repeats and its spread."""

    model = SizeSummary
    extra = 0
    can_delete = False
    fields = SIZE_COLUMNS
    readonly_fields = SIZE_COLUMNS
    verbose_name_plural = "by size (median over the repeats)"

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # The summary is part of the sweep: whoever may view the sweep may view it.
        opts = Sweep._meta
        return request.user.has_perm(f"{opts.app_label}.{get_permission_codename('view', opts)}")

    @admin.display(description="config")
    def config(self, s: SizeSummary) -> str:
        return s.mode if s.size is None else f"{s.mode} {s.size}"

    @admin.display(description="server")
    def server(self, s: SizeSummary) -> str:
        return f"{s.workers}×{s.threads}"

    @admin.display(description="req/s median")
    def rps_display(self, s: SizeSummary) -> str:
        return format_html('<span class="pb-rps" data-rps="{}">{}</span>', repr(s.rps), f"{s.rps:,.1f}")

    @admin.display(description="95% interval")
    def interval(self, s: SizeSummary) -> str:
        # Of the median req/s, over the repeats (results/decision.py); "-" for fewer than it needs.
        if s.rps_ci_low is None or s.rps_ci_high is None:
            return "-"
        return f"{s.rps_ci_low:,.1f}-{s.rps_ci_high:,.1f}"

    @admin.display(description="vs best (95% interval)")
    def vs_best_display(self, s: SizeSummary) -> str:
        # Throughput against the mode's best size, paired by pass (results/decision.py).
        return format_html(
            '<span class="pb-vs-best" data-vs-best="{}">{}</span>', repr(s.vs_best), vs_best_cell(s)
        )

    @admin.display(description="min-max")
    def spread(self, s: SizeSummary) -> str:
        return f"{s.rps_min:,.1f}-{s.rps_max:,.1f}"

    @admin.display(description="CV %")
    def cv(self, s: SizeSummary) -> str:
        return "-" if s.rps_cv_pct is None else f"{s.rps_cv_pct:.1f}"

    @admin.display(description="p99 ms")
    def p99(self, s: SizeSummary) -> str:
        return _ms(s.p99_ms)

    @admin.display(description="fail %")
    def failure_pct_display(self, s: SizeSummary) -> str:
        return f"{s.failure_pct:.2f}"


class TrialInline(ReadOnlyMixin, TrialColumns, admin.TabularInline):
    model = Trial
    extra = 0
    can_delete = False
    fields = TRIAL_COLUMNS
    readonly_fields = TRIAL_COLUMNS
    ordering = ["index"]


@admin.register(Sweep)
class SweepAdmin(PageContextMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "when", "target_display", "sizes_display", "status_display", "recommended", "best_display",
        "bottleneck_display", "trial_count",
    )  # fmt: skip
    list_display_links = ("when",)
    list_filter = (
        "vendor", ModeFilter, "status", ("started_at", admin.DateFieldListFilter), "embedded", "gate_passed",
    )  # fmt: skip
    search_fields = ("target", "alias", "vendor", "db_version", "command", "recommendation", "message")
    date_hierarchy = "started_at"
    list_per_page = 50
    actions = ["compare_selected", "export_csv", "export_json"]
    inlines = [SizeSummaryInline, TrialInline]
    change_form_template = "admin/poolbench/sweep/change_form.html"
    fieldsets = (
        (None, {"fields": ("status", "message", ("started_at", "finished_at"), "command", "seed")}),
        (
            "Target",
            {"fields": (("vendor", "alias", "embedded"), "target", ("db_version", "db_max_connections"))},
        ),
        (
            "Result",
            {"fields": (("best_size", "best_rps"), "recommended_size", "recommendation", "bottleneck")},
        ),
        (
            "Formula and gates",
            {
                "fields": (
                    ("formula_connections", "formula_per_worker", "formula_workers"),
                    ("formula_cores", "formula_spindles", "formula_cores_source"),
                    ("gate_passed", "gate_size"),
                    ("gate_fail_under_rps", "gate_max_failure_rate", "gate_max_p99_ms"),
                    "gate_breaches",
                )
            },
        ),
        ("Settings", {"classes": ("collapse",), "fields": ("sizes", "server", "load", "options", "host")}),
    )
    readonly_fields = (
        "status", "message", "started_at", "finished_at", "command", "vendor", "alias", "embedded", "target",
        "db_version", "db_max_connections", "best_size", "best_rps", "recommended_size", "recommendation", "bottleneck",
        "sizes", "server", "load", "options", "host", "formula_connections", "formula_per_worker",
        "formula_workers", "formula_cores", "formula_spindles", "formula_cores_source", "gate_passed",
        "gate_size", "gate_fail_under_rps", "gate_max_failure_rate", "gate_max_p99_ms", "gate_breaches",
    )  # fmt: skip

    def get_queryset(self, request: HttpRequest) -> QuerySet[Sweep]:
        return super().get_queryset(request).annotate(trial_count=Count("trials"))

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        # A sweep whose command was killed stays "running" until someone looks: the list shows the truth.
        stale.mark_abandoned()
        return super().changelist_view(request, extra_context)

    @admin.display(description="sweep", ordering="started_at")
    def when(self, sweep: Sweep) -> str:
        return _nowrap(f"#{sweep.pk} · {timezone.localtime(sweep.started_at):%Y-%m-%d %H:%M}")

    @admin.display(description="target", ordering="vendor")
    def target_display(self, sweep: Sweep) -> str:
        embedded = " (embedded)" if sweep.embedded else ""
        return format_html(
            '<b>{}</b> · {}<br><small style="word-break: break-all">{}{}</small>',
            sweep.vendor,
            sweep.alias,
            sweep.target,
            embedded,
        )

    @admin.display(description="sizes")
    def sizes_display(self, sweep: Sweep) -> str:
        return ", ".join(str(s) for s in sweep.sizes or [])

    @admin.display(description="status", ordering="status")
    def status_display(self, sweep: Sweep) -> str:
        if sweep.status != Sweep.Status.RUNNING:
            return sweep.status
        # A running sweep's trials so far: each is saved as it ends (the last one may still be running).
        trials = list(sweep.trials.only("status", "rps"))
        done = sum(1 for t in trials if t.status != Trial.Status.RUNNING)
        best = max((t.rps for t in trials if t.status == Trial.Status.OK), default=None)
        so_far = f", best so far {best:,.1f} req/s" if best is not None else ""
        return format_html(
            '<b class="pb-running">running</b><br><small>{} trial(s) done{}</small>', done, so_far
        )

    @admin.display(description="best req/s (size)", ordering="best_rps")
    def best_display(self, sweep: Sweep) -> str:
        if sweep.best_rps is None:
            return "-"
        return _nowrap(f"{sweep.best_rps:,.1f} (size {sweep.best_size})")

    @admin.display(description="recommended", ordering="recommended_size")
    def recommended(self, sweep: Sweep) -> Any:
        return sweep.recommended_size if sweep.recommended_size is not None else "-"

    @admin.display(description="bottleneck", ordering="bottleneck_resource")
    def bottleneck_display(self, sweep: Sweep) -> str:
        if not sweep.bottleneck_resource:
            return "-"
        return format_html('<span title="{}">{}</span>', sweep.bottleneck, sweep.bottleneck_resource)

    @admin.display(description="trials", ordering="trial_count")
    def trial_count(self, sweep: Sweep) -> int:
        return sweep.trial_count  # type: ignore[attr-defined]

    # Pages.

    def get_urls(self) -> list[Any]:
        info = self.opts.app_label, self.opts.model_name
        extra = [
            path(
                "compare/", self.admin_site.admin_view(self.compare_view), name="{}_{}_compare".format(*info)
            )
        ]
        return extra + super().get_urls()

    def page_context(self, sweep: Any) -> dict[str, Any]:
        return export.sweep_context(sweep)

    def compare_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        ids = [int(i) for i in request.GET.get("ids", "").split(",") if i.strip().isdigit()]
        queryset = self.get_queryset(request).filter(pk__in=ids).order_by("started_at", "pk")
        sweeps = export.load_trials_of(queryset)
        changelist = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist")
        if len(sweeps) < 2:
            self.message_user(request, "Select two or more sweeps to compare.", messages.WARNING)
            return HttpResponseRedirect(changelist)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Compare sweeps " + ", ".join(f"#{s.pk}" for s in sweeps),
            "sweeps": sweeps,
            "changelist_url": changelist,
            **export.compare_context(sweeps),
        }
        return TemplateResponse(request, "admin/poolbench/sweep/compare.html", context)

    # Actions: every one only reads.

    @admin.action(description="Compare selected sweeps (charts)")
    def compare_selected(self, request: HttpRequest, queryset: QuerySet[Sweep]) -> HttpResponse | None:
        ids = sorted(queryset.values_list("pk", flat=True))
        if len(ids) < 2:
            self.message_user(request, "Select two or more sweeps to compare.", messages.WARNING)
            return None
        url = reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_compare")
        return HttpResponseRedirect(f"{url}?ids={','.join(map(str, ids))}")

    @admin.action(description="Export selected sweeps as CSV (one row per trial)")
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Sweep]) -> HttpResponse:
        return _download(export.to_csv(_ordered(queryset)), "text/csv", "csv")

    @admin.action(description="Export selected sweeps as JSON (one object per trial)")
    def export_json(self, request: HttpRequest, queryset: QuerySet[Sweep]) -> HttpResponse:
        return _download(export.to_json(_ordered(queryset)), "application/json", "json")


def _nowrap(text: str) -> str:
    return format_html('<span style="white-space: nowrap">{}</span>', text)


def _ordered(queryset: QuerySet[Sweep]) -> list[Sweep]:
    return list(queryset.order_by("started_at", "pk").prefetch_related("trials", "size_summaries"))


def _download(text: str, content_type: str, ext: str) -> HttpResponse:
    response = HttpResponse(text, content_type=f"{content_type}; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="poolbench-sweeps-{stamp}.{ext}"'
    return response
