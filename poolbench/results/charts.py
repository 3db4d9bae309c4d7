"""Charts of trials against pool size, drawn on the server as inline SVG.

No JavaScript and no network: the same markup works in the admin and in a report file opened offline.
Every trial is one ``<circle>`` carrying its stored numbers in ``data-*`` attributes, so repeated sizes show
as a vertical spread and a test (or a curious user) can read the exact values back from the page.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from statistics import median
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Colour-blind-safe palette (Okabe-Ito), one colour per sweep in an overlay.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]


@dataclass(frozen=True)
class Metric:
    field: str
    title: str
    unit: str
    digits: int


METRICS: list[Metric] = [
    Metric("rps", "Requests per second", "req/s", 1),
    Metric("latency_p95_ms", "p95 latency", "ms", 0),
    Metric("latency_p99_ms", "p99 latency", "ms", 0),
    Metric("failure_pct", "Failures", "%", 1),
]


@dataclass
class Series:
    """One sweep's trials on a chart."""

    name: str
    trials: list[Any]
    color: str = PALETTE[0]
    sweep_id: int | None = None
    unplotted: list[Any] = field(default_factory=list)
    # Finished trials with no pool to size (--mode persistent/none): drawn as dashed horizontal lines.
    references: list[Any] = field(default_factory=list)
    # Set when the sweep compared pooled modes (--mode pool,queuepool): one series per mode.
    mode: str = ""


def plottable(trials: Iterable[Any]) -> tuple[list[Any], list[Any], list[Any]]:
    """Finished trials with a pool size; finished ones without (reference lines); the rest (not drawn)."""
    points, references, rest = [], [], []
    for t in trials:
        if t.status != "ok":
            rest.append(t)
        elif t.pool_size:
            points.append(t)
        else:
            references.append(t)
    return points, references, rest


def series_for(sweeps: Sequence[Any]) -> list[Series]:
    """One series per sweep, or per pooled mode (and per server, for a workers x threads grid) of a sweep
    that ran several: size 8 of Django's pool and size 8 of a QueuePool, or size 8 under 1x32 and under
    2x32, are different configurations, their medians and spreads must not mix."""
    out: list[Series] = []
    for sweep in sweeps:
        trials = sorted(sweep.trials.all(), key=lambda t: t.index)
        points, references, rest = plottable(trials)
        name = f"#{sweep.pk} {sweep.vendor} {sweep.started_at:%Y-%m-%d %H:%M}"
        several = (len({t.mode for t in points}) > 1, len({(t.workers, t.threads) for t in points}) > 1)
        modes = list(dict.fromkeys(_config(t, *several) for t in points))
        if len(modes) <= 1:
            color = PALETTE[len(out) % len(PALETTE)]
            out.append(
                Series(name, points, color=color, sweep_id=sweep.pk, unplotted=rest, references=references)
            )
            continue
        for j, mode in enumerate(modes):
            color = PALETTE[len(out) % len(PALETTE)]
            mine = [t for t in points if _config(t, *several) == mode]
            # The sweep's unplotted trials and reference lines are listed once, with its first mode.
            out.append(
                Series(
                    f"{name} {mode}",
                    mine,
                    color=color,
                    sweep_id=sweep.pk,
                    mode=mode,
                    unplotted=rest if j == 0 else [],
                    references=references if j == 0 else [],
                )  # fmt: skip
            )
    return out


def _config(t: Any, modes: bool, servers: bool) -> str:
    """A series' name within its sweep: the mode and/or the server, where the sweep ran several."""
    return " ".join(filter(None, [t.mode if modes else "", f"{t.workers}x{t.threads}" if servers else ""]))


# Geometry of every chart, in SVG user units (the SVG scales to its container).
WIDTH, HEIGHT = 560, 300
LEFT, RIGHT, TOP, BOTTOM = 62, 16, 34, 46


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if value <= step * exp:
            return step * exp
    return 10 * exp


def _fmt(value: float, digits: int) -> str:
    return f"{value:,.{digits}f}"


class _XScale:
    """Pool sizes on a log scale when they span a wide range (5..200 is the usual sweep), linear otherwise."""

    def __init__(self, sizes: Sequence[int]):
        self.lo, self.hi = min(sizes), max(sizes)
        self.log = self.lo > 0 and self.hi / self.lo >= 8
        self.span = WIDTH - LEFT - RIGHT - 30

    def __call__(self, size: float) -> float:
        if self.hi == self.lo:
            return LEFT + 15 + self.span / 2
        if self.log:
            frac = (math.log(size) - math.log(self.lo)) / (math.log(self.hi) - math.log(self.lo))
        else:
            frac = (size - self.lo) / (self.hi - self.lo)
        return LEFT + 15 + frac * self.span


def _ticks(sizes: Sequence[int], x: _XScale) -> list[int]:
    """Every size, dropping labels that would overlap their left neighbour."""
    out: list[int] = []
    for s in sorted(set(sizes)):
        if out and x(s) - x(out[-1]) < 26:
            continue
        out.append(s)
    return out


@dataclass
class _Plot:
    """One chart's scales: pool size to x, the metric's value to y."""

    metric: Metric
    x: _XScale
    ymax: float

    def y(self, v: float) -> float:
        plot_h = HEIGHT - TOP - BOTTOM
        return TOP + plot_h - (v / self.ymax) * plot_h


def chart(metric: Metric, series: Sequence[Series], *, chart_id: str = "", overlay: Any = None) -> SafeString:
    """One SVG chart of ``metric`` against pool size: a point per trial, a line through the medians.
    ``overlay`` (e.g. the USL fit, results/sweepextras.py) has ``top`` (its highest value, for the y
    scale) and ``marks(plot)`` (its SVG, drawn on the chart's own axes)."""
    points = [(s, t, getattr(t, metric.field)) for s in series for t in s.trials]
    points = [(s, t, v) for s, t, v in points if v is not None]
    refs = [(s, t, getattr(t, metric.field)) for s in series for t in s.references]
    refs = [(s, t, v) for s, t, v in refs if v is not None]
    head = _head(metric, chart_id)
    if not points and not refs:
        return mark_safe(
            head + f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" fill="#888">'
            "no finished pooled trial to draw</text></svg>"
        )
    plot = _Plot(
        metric,
        _XScale([t.pool_size for _, t, _ in points] or [1]),
        _nice_max(max([v for _, _, v in points + refs] + [overlay.top if overlay else 0]) * 1.05),
    )
    parts = [head, *_axes(plot, sorted({t.pool_size for _, t, _ in points}))]
    parts += _reference_lines(plot, refs)
    offsets = _offsets(series)
    for s in series:
        parts += _series_marks(plot, s, offsets[s.name])
    if overlay is not None and points:
        parts += overlay.marks(plot)
    if len(series) > 1 or any(s.mode for s in series):
        parts.append(_legend(series))
    parts.append("</svg>")
    return mark_safe("".join(parts))


def _head(metric: Metric, chart_id: str) -> str:
    title = f"{metric.title} ({metric.unit}) by pool size"
    return (
        f'<svg class="pb-chart" data-metric="{metric.field}" '
        f'id="{escape(chart_id or "chart-" + metric.field)}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" aria-label="{escape(title)}" '
        'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif" '
        f'font-size="12">'
        f"<title>{escape(title)}</title>"
        f'<text x="{LEFT}" y="20" font-size="14" font-weight="600" fill="#222">{escape(metric.title)} '
        f'<tspan fill="#666" font-weight="400">({escape(metric.unit)})</tspan></text>'
    )


def _axes(plot: _Plot, sizes: Sequence[int]) -> list[str]:
    """The grid, the y labels, a tick per pool size (those that fit) and the axes."""
    parts = []
    plot_h = HEIGHT - TOP - BOTTOM
    for i in range(6):
        v = plot.ymax * i / 5
        yy = plot.y(v)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#e5e5e5"/>')
        digits = plot.metric.digits if plot.ymax < 10 else 0
        parts.append(
            f'<text x="{LEFT - 6}" y="{yy + 4:.1f}" text-anchor="end" fill="#555">{_fmt(v, digits)}</text>'
        )
    for s in _ticks(sizes, plot.x):
        xx = plot.x(s)
        parts.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{TOP}" y2="{TOP + plot_h}" stroke="#f0f0f0"/>')
        parts.append(
            f'<text x="{xx:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle" fill="#555">{s}</text>'
        )
    parts.append(
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" stroke="#999"/>'
        f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + plot_h}" stroke="#999"/>'
        f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 8}" text-anchor="middle" fill="#333">pool size'
        f"{' (log scale)' if plot.x.log else ''}</text>"
    )
    return parts


def _reference_lines(plot: _Plot, refs: Sequence[tuple[Series, Any, float]]) -> list[str]:
    """A dashed line per trial without a pool, labelled at the right."""
    parts = []
    metric = plot.metric
    label_ys: list[float] = []
    for s, t, v in sorted(refs, key=lambda r: r[2]):
        yy = plot.y(v)
        # Labels of lines close together are stacked upwards instead of printed over each other.
        label_y = yy - 4
        while any(abs(label_y - other) < 13 for other in label_ys):
            label_y -= 13
        label_ys.append(label_y)
        tip = f"{s.name}: trial {t.index}, {t.label}: {_fmt(v, metric.digits)} {metric.unit}"
        parts.append(
            f'<g class="pb-reference" data-sweep="{s.sweep_id or ""}" data-trial="{t.index}" '
            f'data-value="{v!r}" data-rps="{t.rps!r}">'
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{yy:.1f}" y2="{yy:.1f}" '
            f'stroke="{escape(s.color)}" stroke-width="1.5" stroke-dasharray="5 4"/>'
            f'<text x="{WIDTH - RIGHT - 4}" y="{label_y:.1f}" text-anchor="end" fill="{escape(s.color)}" '
            'stroke="#fff" stroke-width="3" paint-order="stroke">'
            f"{escape(_short_label(t))}: {_fmt(v, metric.digits)}</text>"
            f"<title>{escape(tip)}</title></g>"
        )
    return parts


def _series_marks(plot: _Plot, s: Series, offset: float) -> list[str]:
    """One series: the line through the medians, the spread of repeats, a point per trial."""
    metric = plot.metric
    values = [(t, getattr(t, metric.field)) for t in s.trials if getattr(t, metric.field) is not None]
    if not values:
        return []
    by_size: dict[int, list[float]] = {}
    for t, v in values:
        by_size.setdefault(t.pool_size, []).append(v)
    color = escape(s.color)
    line = " ".join(
        f"{plot.x(size) + offset:.1f},{plot.y(median(vs)):.1f}" for size, vs in sorted(by_size.items())
    )
    parts = [f'<g class="pb-series" data-sweep="{s.sweep_id or ""}">']
    if len(by_size) > 1:
        parts.append(
            f'<polyline class="pb-median" points="{line}" fill="none" stroke="{color}" stroke-width="2" '
            f'stroke-opacity="0.75"/>'
        )
    for size, vs in by_size.items():
        if len(vs) > 1:
            xx = plot.x(size) + offset
            lo, hi = plot.y(min(vs)), plot.y(max(vs))
            # The spread of the repeats, min to max: a shaded bar with whisker caps.
            parts.append(
                f'<g class="pb-spread-bar" data-size="{size}" data-min="{min(vs)!r}" data-max="{max(vs)!r}">'
                f'<line class="pb-spread" x1="{xx:.1f}" x2="{xx:.1f}" y1="{lo:.1f}" y2="{hi:.1f}" '
                f'stroke="{color}" stroke-width="6" stroke-opacity="0.18" stroke-linecap="round"/>'
                + "".join(
                    f'<line x1="{xx - 7:.1f}" x2="{xx + 7:.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="{color}" '
                    'stroke-opacity="0.6" stroke-width="1.5"/>'
                    for y in (lo, hi)
                )
                + "</g>"
            )
    seen: dict[int, int] = {}
    for t, v in values:
        # Repeats of one size are nudged sideways a little so that equal values stay visible.
        k = seen[t.pool_size] = seen.get(t.pool_size, -1) + 1
        nudge = (k % 3 - 1) * 3 if len(by_size[t.pool_size]) > 1 else 0
        parts.append(_point(plot, s, t, v, plot.x(t.pool_size) + offset + nudge))
    parts.append("</g>")
    return parts


def _point(plot: _Plot, s: Series, t: Any, v: float, xx: float) -> str:
    metric = plot.metric
    tip = (
        f"{s.name}: trial {t.index}, pool {t.pool_size}: {_fmt(v, metric.digits)} {metric.unit} "
        f"({_fmt(t.rps, 1)} req/s, p95 {_fmt_opt(t.latency_p95_ms)} ms, "
        f"p99 {_fmt_opt(t.latency_p99_ms)} ms, {_fmt(t.failure_pct, 1)}% failed)"
    )
    return (
        f'<circle class="pb-point" cx="{xx:.1f}" cy="{plot.y(v):.1f}" r="4.5" fill="{escape(s.color)}" '
        f'stroke="#fff" stroke-width="1.5" data-sweep="{s.sweep_id or ""}" data-trial="{t.index}" '
        f'data-size="{t.pool_size}" data-value="{v!r}" data-rps="{t.rps!r}">'
        f"<title>{escape(tip)}</title></circle>"
    )


def _short_label(t: Any) -> str:
    return {"persistent": "persistent", "none": "no pool"}.get(t.mode, t.label)


def _fmt_opt(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _offsets(series: Sequence[Series]) -> dict[str, float]:
    """Overlaid sweeps are shifted a few units apart, so their points at one size don't hide each other."""
    n = len(series)
    return {s.name: (i - (n - 1) / 2) * 5 for i, s in enumerate(series)}


def _legend(series: Sequence[Series]) -> str:
    parts = ['<g class="pb-legend">']
    xx = WIDTH - RIGHT
    for s in reversed(series):
        label = f"#{s.sweep_id}" if s.sweep_id is not None else s.name
        label = escape(f"{label} {s.mode}" if s.mode else label)
        xx -= 12 + 7 * len(label) + 10
        parts.append(
            f'<circle cx="{xx:.0f}" cy="16" r="5" fill="{escape(s.color)}"/>'
            f'<text x="{xx + 9:.0f}" y="20" fill="#333">{label}</text>'
        )
    parts.append("</g>")
    return "".join(parts)


def charts(
    series: Sequence[Series], prefix: str = "chart", overlays: dict[str, Any] | None = None
) -> list[SafeString]:
    """The four charts of a page: requests/s, p95, p99 and failure % against pool size; ``overlays``
    maps a metric's field to a curve drawn on its chart."""
    overlays = overlays or {}
    return [chart(m, series, chart_id=f"{prefix}-{m.field}", overlay=overlays.get(m.field)) for m in METRICS]
