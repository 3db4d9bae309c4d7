"""What the sweep page and the HTML report show beyond the closed-loop charts: the open-model trials
(target vs achieved rate, late and dropped requests, each --slo verdict), capacity at SLO per size (a table
and a bar chart), and the USL fit (its figures, its sentence, and its curve drawn on the req/s chart).

Every figure is the stored one (Trial, SizeCapacity rows; the fit is results/usl.py's over the stored
trials), and every SVG mark carries it in ``data-*`` attributes so that a test can read it back.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from poolbench.results import usl
from poolbench.results.barcharts import _num, _y_axis
from poolbench.results.charts import BOTTOM, HEIGHT, LEFT, RIGHT, TOP, WIDTH, _nice_max

USL_COLOR = "#CC79A7"


def rate_context(trials: Sequence[Any]) -> dict[str, Any] | None:
    """The open-model trials (a target rate), one row each, with a column per --slo target."""
    rated = [t for t in trials if t.target_rate is not None]
    if not rated:
        return None
    targets = list(dict.fromkeys(v["target"] for t in rated for v in t.slo_results or []))
    rows = []
    for t in rated:
        verdicts = {v["target"]: v for v in t.slo_results or []}
        rows.append({
            "trial": t, "target": t.target_rate, "achieved": t.achieved_rate,
            "ratio": None if not t.target_rate or t.achieved_rate is None else t.achieved_rate / t.target_rate,
            "not_offered": t.rate_offered is False,
            "slo": [_verdict(verdicts.get(name)) for name in targets],
        })  # fmt: skip
    return {"targets": targets, "rows": rows}


def _verdict(v: dict[str, Any] | None) -> dict[str, Any]:
    if v is None:
        return {"passed": None, "value": None, "text": "-"}
    unit = "%" if v.get("metric") == "errors" else " ms"
    value = v.get("value")
    shown = (
        "no figure" if value is None else f"{value:,.3g}{unit}" if abs(value) < 10 else f"{value:,.0f}{unit}"
    )
    return {
        "passed": bool(v["passed"]),
        "value": value,
        "text": f"{'pass' if v['passed'] else 'FAIL'} ({shown})",
    }


def capacity_context(sweep: Any, prefix: str = "chart") -> dict[str, Any] | None:
    """--find-capacity: a row per configuration and size, and the bar chart of capacity at SLO."""
    caps = list(sweep.capacities.all())
    if not caps:
        return None
    rows = [
        {
            "cap": c,
            "tried": ", ".join(f"{s['rate']:g}{'+' if s['passed'] else '-'}" for s in c.steps if "rate" in s),
        }
        for c in caps
    ]
    return {
        "rows": rows,
        "targets": ", ".join((sweep.options or {}).get("slo") or []),
        "chart": capacity_chart(caps, chart_id=f"{prefix}-capacity"),
    }


def capacity_chart(caps: Sequence[Any], *, chart_id: str) -> SafeString:
    """A bar per configuration: its capacity at SLO (req/s); the best and the recommended one marked."""
    title = "Capacity at SLO by pool size"
    head = (
        f'<svg class="pb-bars pb-capacity" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
        f'role="img" aria-label="{title}" font-family="system-ui, sans-serif" font-size="12"><title>{title}</title>'
        f'<text x="{LEFT}" y="20" font-size="14" font-weight="600" fill="#222">{title} '
        '<tspan fill="#666" font-weight="400">(req/s within every target)</tspan></text>'
    )
    ymax = _nice_max(max([c.capacity_rps or 0 for c in caps] + [1.0]) * 1.12)
    plot_h = HEIGHT - TOP - BOTTOM
    out = [head, *_y_axis(ymax, plot_h)]
    slot = (WIDTH - LEFT - RIGHT) / len(caps)
    bar_w = min(56.0, slot * 0.7)
    for i, c in enumerate(caps):
        x0 = LEFT + slot * i + (slot - bar_w) / 2
        v = c.capacity_rps or 0.0
        h = v / ymax * plot_h
        color = "#009E73" if c.recommended else "#0072B2" if c.best else "#9aa7b4"
        mark = " ".join(filter(None, ["best" if c.best else "", "recommended" if c.recommended else ""]))
        label = f"{c.size}" if len({x.mode for x in caps}) == 1 else f"{c.mode} {c.size}"
        tip = f"{c.mode} {c.size}, {c.workers}x{c.threads}: " + (
            "no rate met every target" if c.capacity_rps is None else f"{c.capacity_rps:,.1f} req/s"
        )
        out.append(
            f'<g class="pb-capacity-bar" data-size="{c.size}" data-mode="{escape(c.mode)}" '
            f'data-value="{"" if c.capacity_rps is None else repr(c.capacity_rps)}" '
            f'data-best="{int(c.best)}" data-recommended="{int(c.recommended)}">'
            f'<rect x="{x0:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{color}">'
            f"<title>{escape(tip)}</title></rect>"
            f'<text x="{x0 + bar_w / 2:.1f}" y="{TOP + plot_h - h - 4:.1f}" text-anchor="middle" fill="#333">'
            f"{'none' if c.capacity_rps is None else _num(v)}{' ' + mark if mark else ''}</text>"
            f'<text x="{x0 + bar_w / 2:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle" fill="#555">'
            f"{escape(label)}</text></g>"
        )
    out.append(
        f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 8}" text-anchor="middle" fill="#333">pool size '
        "(green: recommended, blue: best)</text></svg>"
    )
    return mark_safe("".join(out))


@dataclass
class USLOverlay:
    """The fitted curve on the req/s chart. The fit is over connections in use (results/usl.py), the
    chart's x axis is the pool size: between two measured sizes the connections in use are interpolated,
    so the curve passes over each size at the fitted req/s of the connections that size used."""

    fit: usl.USLFit
    sizes: list[int]
    used: list[float]  # connections in use at each size (the fit's N)
    steps: int = 12

    @property
    def fitted(self) -> list[float]:
        return [self.fit.predict(n) for n in self.used]

    @property
    def top(self) -> float:
        return max(self.fitted)

    def marks(self, plot: Any) -> list[str]:
        pts = []
        for i, (a, b) in enumerate(zip(self.sizes, self.sizes[1:], strict=False)):
            for k in range(0 if i == 0 else 1, self.steps + 1):
                f = k / self.steps
                size = (
                    math.exp(math.log(a) + f * (math.log(b) - math.log(a))) if plot.x.log else a + f * (b - a)
                )
                n = self.used[i] + f * (self.used[i + 1] - self.used[i])
                pts.append(f"{plot.x(size):.1f},{plot.y(self.fit.predict(n)):.1f}")
        data = json.dumps([[s, n, y] for s, n, y in zip(self.sizes, self.used, self.fitted, strict=True)])
        tip = f"USL fit: sigma {self.fit.sigma:.4f}, kappa {self.fit.kappa:.6f}, R^2 {self.fit.r2:.3f}"
        return [
            f'<polyline class="pb-usl" points="{" ".join(pts)}" fill="none" stroke="{USL_COLOR}" '
            f'stroke-width="2" stroke-dasharray="6 3" data-points="{escape(data)}" '
            f'data-sigma="{self.fit.sigma!r}" data-kappa="{self.fit.kappa!r}" data-r2="{self.fit.r2!r}">'
            f"<title>{escape(tip)}</title></polyline>",
            f'<text x="{WIDTH - RIGHT - 4}" y="{TOP + 12}" text-anchor="end" fill="{USL_COLOR}">- - USL fit</text>',
        ]


def usl_context(trials: Sequence[Any]) -> dict[str, Any] | None:
    """The fit's figures, its sentence(s) and the overlay (None: the sweep has too few sizes)."""
    points, sizes = usl.sweep_points(trials)
    if len(sizes) < usl.MIN_SIZES:
        return None
    if len({n for n, _ in points}) < usl.MIN_SIZES:  # as the terminal says it: "not done: ..."
        return {"fit": None, "message": " ".join(usl.report_lines(trials))}
    try:
        f = usl.fit(points, sizes)
        lines = usl.report_lines(trials)
    except (RuntimeError, ValueError) as exc:  # curve_fit found no fit
        return {"fit": None, "message": f"USL fit: not found ({exc})."}
    drawn = not f.poor  # as usl.sweep_curve: a poor fit is printed, not drawn
    return {
        "fit": f,
        "n_star": f.n_star,
        "sentences": [line.strip() for line in lines[1:]],
        "overlay": USLOverlay(f, sizes, [n for n, _ in points]) if drawn else None,
        "points": len(points),
    }
