"""Charts of one trial, as inline SVG: its latency distribution (from Locust's stored histogram) and its
timeline second by second (requests, latency, the database's connections) with the measured window marked.

As in charts.py: no script, nothing fetched; every mark carries its number in ``data-*`` attributes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from poolbench.results.charts import BOTTOM, HEIGHT, LEFT, TOP, WIDTH, _nice_max

RIGHT = 48  # room for the cumulative-% axis
PLOT_W = WIDTH - LEFT - RIGHT
PLOT_H = HEIGHT - TOP - BOTTOM
MARKERS = (("p50", "latency_p50_ms", "#009E73"), ("p95", "latency_p95_ms", "#E69F00"),
           ("p99", "latency_p99_ms", "#D55E00"))  # fmt: skip


def _head(cls: str, chart_id: str, title: str, unit: str) -> str:
    return (
        f'<svg class="{cls}" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
        f'aria-label="{escape(title)}" font-family="system-ui, sans-serif" font-size="12">'
        f"<title>{escape(title)} ({escape(unit)})</title>"
        f'<text x="{LEFT}" y="20" font-size="14" font-weight="600" fill="#222">{escape(title)} '
        f'<tspan fill="#666" font-weight="400">({escape(unit)})</tspan></text>'
    )


def _empty(head: str, why: str) -> SafeString:
    return mark_safe(
        head
        + f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" fill="#888">{escape(why)}</text></svg>'
    )


def _num(v: float) -> str:
    return f"{v:.2g}" if 0 < abs(v) < 10 else f"{v:,.0f}"


def latency_distribution(trial: Any, chart_id: str = "trial-latency") -> SafeString:
    """Share of requests per response time (bars, left axis) and the cumulative share (line, right axis),
    on a log time scale, with the trial's stored p50/p95/p99 marked."""
    head = _head("pb-latency", chart_id, "Latency distribution, measured window", "ms, log scale")
    hist = sorted((float(k), int(c)) for k, c in (trial.response_times or {}).items() if int(c) > 0)
    total = sum(c for _, c in hist)
    if not total:
        return _empty(head, "no response time stored for this trial")
    lo, hi = max(hist[0][0], 1.0), max(hist[-1][0], 2.0)
    lo_log, span = math.log10(lo), max(math.log10(hi) - math.log10(lo), 0.3)

    def x(ms: float) -> float:
        return LEFT + (math.log10(max(ms, lo)) - lo_log) / span * PLOT_W

    bins = _log_bins(hist, lo_log, span)
    ymax = _nice_max(max(100 * c / total for _, _, c in bins) * 1.1)
    out = [head, f'<g class="pb-hist" data-total="{total}">']
    for a, b, c in bins:
        share = 100 * c / total
        h = share / ymax * PLOT_H
        out.append(
            f'<rect x="{x(a):.1f}" y="{TOP + PLOT_H - h:.1f}" width="{max(x(b) - x(a) - 1, 1):.1f}" '
            f'height="{h:.1f}" fill="#56B4E9" data-from="{a!r}" data-to="{b!r}" data-count="{c}">'
            f"<title>{_num(a)}-{_num(b)} ms: {c} requests ({share:.1f}%)</title></rect>"
        )
    out.append("</g>")
    seen, points = 0, []
    for ms, c in hist:
        seen += c
        points.append((ms, 100 * seen / total))
    line = " ".join(f"{x(ms):.1f},{TOP + PLOT_H - cum / 100 * PLOT_H:.1f}" for ms, cum in points)
    out.append(
        f'<polyline class="pb-cdf" points="{line}" fill="none" stroke="#333" stroke-width="1.5" '
        f'data-last="{points[-1][1]!r}"/>'
    )
    out += _latency_axes(x, lo, hi, ymax)
    out += _markers(trial, x)
    out.append("</svg>")
    return mark_safe("".join(out))


def _log_bins(
    hist: Sequence[tuple[float, int]], lo_log: float, span: float
) -> list[tuple[float, float, int]]:
    """About 40 bins of equal width on the log scale; empty bins are left out."""
    n = 40
    edges = [10 ** (lo_log + span * i / n) for i in range(n + 1)]
    counts = [0] * n
    for ms, c in hist:
        i = min(n - 1, max(0, int((math.log10(max(ms, edges[0])) - lo_log) / span * n)))
        counts[i] += c
    return [(edges[i], edges[i + 1], c) for i, c in enumerate(counts) if c]


def _latency_axes(x: Any, lo: float, hi: float, ymax: float) -> list[str]:
    out = []
    for i in range(6):
        y = TOP + PLOT_H - i / 5 * PLOT_H
        out.append(f'<line x1="{LEFT}" x2="{LEFT + PLOT_W}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#2a7fb8">{ymax * i / 5:.3g}%</text>'
        )
        out.append(f'<text x="{LEFT + PLOT_W + 6}" y="{y + 4:.1f}" fill="#333">{20 * i}%</text>')
    for tick in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000):
        if lo <= tick <= hi:
            out.append(
                f'<text x="{x(tick):.1f}" y="{TOP + PLOT_H + 16}" text-anchor="middle" fill="#555">{tick:,}</text>'
            )
    out.append(
        f'<line x1="{LEFT}" x2="{LEFT + PLOT_W}" y1="{TOP + PLOT_H}" y2="{TOP + PLOT_H}" stroke="#999"/>'
        f'<text x="{LEFT + PLOT_W / 2}" y="{HEIGHT - 8}" text-anchor="middle" fill="#333">response time, ms '
        "(bars: share of requests, left; line: cumulative share, right)</text>"
    )
    return out


def _markers(trial: Any, x: Any) -> list[str]:
    out = []
    for k, (name, field, color) in enumerate(MARKERS):
        v = getattr(trial, field)
        if v is None:
            continue
        xx = x(max(v, 1.0))
        # Labels near the right edge go to the left of their line, off the cumulative-% axis.
        right = xx > LEFT + PLOT_W * 0.6
        tx, anchor = (xx - 3, "end") if right else (xx + 3, "start")
        out.append(
            f'<g class="pb-marker" data-percentile="{name}" data-ms="{v!r}">'
            f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{TOP}" y2="{TOP + PLOT_H}" stroke="{color}" '
            'stroke-width="1.5" stroke-dasharray="4 3"/>'
            f'<text x="{tx:.1f}" y="{TOP + 12 + 13 * k}" text-anchor="{anchor}" fill="{color}" stroke="#fff" '
            'stroke-width="3" '
            f'paint-order="stroke">{name} {_num(v)} ms</text></g>'
        )
    return out


# The timeline: one chart per measure, x = seconds since the first user started.
TIMELINE = (
    ("requests", "Requests per second", "req/s", (("requests", "requests", "#0072B2"),)),
    ("latency", "Latency per second", "ms", (("mean_ms", "mean", "#009E73"), ("p95_ms", "p95", "#D55E00"))),
    ("connections", "Database connections (the trial server's)", "open", (("connections", "open", "#CC79A7"),)),
)  # fmt: skip


def timeline_charts(trial: Any, prefix: str = "timeline") -> list[SafeString]:
    """Requests, latency and open connections per second, the measured window shaded."""
    tl = trial.timeline or {}
    return [
        _timeline_chart(tl, f"{prefix}-{key}", title, unit, lines) for key, title, unit, lines in TIMELINE
    ]


def _timeline_chart(tl: dict[str, Any], chart_id: str, title: str, unit: str, lines: Any) -> SafeString:
    head = _head("pb-timeline", chart_id, title, unit)
    rows = tl.get("seconds") or []
    values = [r[f] for r in rows for f, _, _ in lines if r.get(f) is not None]
    if not values:
        return _empty(
            head,
            "not recorded for this trial (a trial stored before poolbench kept a timeline, or one that did not run)",
        )
    tmax = max(float(tl.get("measure_end_s") or 0), len(rows))
    ymax = _nice_max(max(values) * 1.1)

    def x(t: float) -> float:
        return LEFT + t / tmax * PLOT_W

    def y(v: float) -> float:
        return TOP + PLOT_H - v / ymax * PLOT_H

    out = [head]
    a, b = tl.get("measure_start_s"), tl.get("measure_end_s")
    if a is not None and b is not None:
        out.append(
            f'<rect class="pb-window" x="{x(a):.1f}" y="{TOP}" width="{x(b) - x(a):.1f}" height="{PLOT_H}" '
            f'fill="#009E73" fill-opacity="0.08" data-from="{a!r}" data-to="{b!r}"/>'
            f'<text x="{x(a) + 4:.1f}" y="{TOP + 12}" fill="#0b6b4f">measured window</text>'
            f'<text x="{LEFT + 4}" y="{TOP + 12}" fill="#888">warm-up</text>'
        )
    out += _time_axes(x, y, tmax, ymax)
    for field, name, color in lines:
        pts = [(r["t"] + 0.5, r[field], r) for r in rows if r.get(field) is not None]
        poly = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v, _ in pts)
        out.append(f'<g class="pb-line" data-field="{field}"><polyline points="{poly}" fill="none" '
                   f'stroke="{color}" stroke-width="2"/>')  # fmt: skip
        for t, v, r in pts:
            part = " (part of a second)" if r.get("partial") else ""
            out.append(
                f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="3" fill="{color}" data-t="{r["t"]}" '
                f'data-value="{v!r}" data-partial="{str(bool(r.get("partial"))).lower()}">'
                f"<title>second {r['t']}{part}: {name} {_num(v)} {escape(unit)}</title></circle>"
            )
        out.append("</g>")
    if len(lines) > 1:
        out.append("".join(
            f'<rect x="{LEFT + PLOT_W - 120 + 60 * i}" y="{TOP - 22}" width="10" height="10" fill="{c}"/>'
            f'<text x="{LEFT + PLOT_W - 106 + 60 * i}" y="{TOP - 13}" fill="#333">{n}</text>'
            for i, (_, n, c) in enumerate(lines)
        ))  # fmt: skip
    out.append("</svg>")
    return mark_safe("".join(out))


def _time_axes(x: Any, y: Any, tmax: float, ymax: float) -> list[str]:
    out = []
    for i in range(6):
        v = ymax * i / 5
        out.append(f'<line x1="{LEFT}" x2="{LEFT + PLOT_W}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end" fill="#555">{_num(v)}</text>')
    step = max(1, math.ceil(tmax / 12))
    for t in range(0, int(tmax) + 1, step):
        out.append(
            f'<text x="{x(t):.1f}" y="{TOP + PLOT_H + 16}" text-anchor="middle" fill="#555">{t}</text>'
        )
    out.append(
        f'<line x1="{LEFT}" x2="{LEFT + PLOT_W}" y1="{TOP + PLOT_H}" y2="{TOP + PLOT_H}" stroke="#999"/>'
        f'<text x="{LEFT + PLOT_W / 2}" y="{HEIGHT - 8}" text-anchor="middle" fill="#333">'
        "seconds since the first user started</text>"
    )
    return out
