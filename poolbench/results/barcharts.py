"""Bar charts of a sweep by configuration, as inline SVG: where the time goes inside the server (stacked,
ms per request) and the CPU of the load generator, the server and the database (side by side, cores).

One bar group per configuration (mode, workers x threads, pool size), in the sweep's order; with repeats,
each part is the median over the configuration's finished trials. Every ``<rect>`` carries its number in
``data-*`` attributes so that a test can read it back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import median
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from poolbench.results.charts import BOTTOM, HEIGHT, LEFT, RIGHT, TOP, WIDTH, _nice_max


@dataclass(frozen=True)
class Part:
    field: str  # a Trial attribute
    label: str
    color: str


# The split inside the server (server/timing.py), in the order a request meets its parts; they add up to
# its time in the server. Sweeps stored before the split was measured have only the older three parts.
TIME_PARTS = [
    Part("queue_mean_ms", "queued in the server", "#999999"),
    Part("pool_wait_mean_ms", "waiting in the pool", "#D55E00"),
    Part("connect_mean_ms", "opening connections", "#F0E442"),
    Part("sql_mean_ms", "in the database", "#0072B2"),
    Part("python_mean_ms", "running Python", "#009E73"),
    Part("gil_mean_ms", "waiting for a CPU or the GIL", "#CC79A7"),
]
OLD_TIME_PARTS = [
    Part("acquire_mean_ms", "waiting for a connection", "#D55E00"),
    Part("db_mean_ms", "in the database", "#0072B2"),
    Part("app_mean_ms", "rest of the request", "#009E73"),
]


def time_parts(trials: Sequence[Any]) -> list[Part]:
    """The split's parts when any trial measured them, else the older three (rows from before it)."""
    split = any(getattr(t, "pool_wait_mean_ms", None) is not None for t in trials)
    return TIME_PARTS if split else OLD_TIME_PARTS


CPU_PARTS = [
    Part("load_cores", "load generator", "#E69F00"),
    Part("server_cores", "server", "#0072B2"),
    Part("database_cores", "database", "#CC79A7"),
]


@dataclass
class Group:
    """One configuration's bar(s): the label under it and the median of each part (None: not measured)."""

    label: str
    key: str
    values: dict[str, float | None]
    trials: int


def groups(trials: Iterable[Any], parts: Sequence[Part]) -> list[Group]:
    """Finished trials grouped by configuration, in the order they first ran; medians of each part."""
    trials = list(trials)
    grid = len({(t.workers, t.threads) for t in trials}) > 1
    by_key: dict[str, list[Any]] = {}
    for t in trials:
        if t.status == "ok":
            by_key.setdefault(_key(t), []).append(t)
    out = []
    for key, mine in by_key.items():
        values = {}
        for p in parts:
            got = [getattr(t, p.field) for t in mine if getattr(t, p.field) is not None]
            values[p.field] = median(got) if got else None
        label = mine[0].label + (f" {mine[0].workers}x{mine[0].threads}" if grid else "")
        out.append(Group(label, key, values, len(mine)))
    return out


def _key(t: Any) -> str:
    return f"{t.mode}:{t.workers}x{t.threads}:{t.pool_size or ''}"


def bar_chart(
    title: str, unit: str, data: Sequence[Group], parts: Sequence[Part], *, stacked: bool, chart_id: str
) -> SafeString:
    """Stacked (parts on top of each other) or grouped (side by side) bars, one group per configuration."""
    height = HEIGHT + LEGEND_ROW * (len(_legend_rows(parts)) - 1)
    head = (
        f'<svg class="pb-bars" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {height}" width="100%" '
        f'role="img" aria-label="{escape(title)}" font-family="system-ui, sans-serif" font-size="12">'
        f"<title>{escape(title)} ({escape(unit)})</title>"
        f'<text x="{LEFT}" y="20" font-size="14" font-weight="600" fill="#222">{escape(title)} '
        f'<tspan fill="#666" font-weight="400">({escape(unit)})</tspan></text>'
    )
    measured = [g for g in data if any(v is not None for v in g.values.values())]
    if not measured:
        return mark_safe(
            head + f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" fill="#888">'
            "not measured for any finished trial</text></svg>"
        )
    tops = [
        sum(v or 0 for v in g.values.values()) if stacked else max(v or 0 for v in g.values.values())
        for g in measured
    ]
    ymax = _nice_max(max(tops) * 1.05)
    plot_h = HEIGHT - TOP - BOTTOM
    parts_svg = [head, *_y_axis(ymax, plot_h)]
    slot = (WIDTH - LEFT - RIGHT) / len(measured)
    bar_w = min(56.0, slot * 0.7)
    for i, g in enumerate(measured):
        x0 = LEFT + slot * i + (slot - bar_w) / 2
        parts_svg.append(f'<g class="pb-bar-group" data-config="{escape(g.key)}" data-trials="{g.trials}">')
        base = 0.0
        for j, p in enumerate(parts):
            v = g.values[p.field]
            if v is None:
                continue
            w = bar_w if stacked else bar_w / len(parts)
            x = x0 if stacked else x0 + j * w
            lo = base if stacked else 0.0
            y_top = TOP + plot_h - (lo + v) / ymax * plot_h
            h = v / ymax * plot_h
            tip = f"{g.label}: {p.label} {_num(v)} {unit}"
            parts_svg.append(
                f'<rect class="pb-bar" x="{x:.1f}" y="{y_top:.1f}" width="{w:.1f}" height="{max(h, 0):.1f}" '
                f'fill="{p.color}" data-part="{p.field}" data-value="{v!r}"><title>{escape(tip)}</title></rect>'
            )
            if stacked:
                base += v
        parts_svg.append(
            f'<text x="{x0 + bar_w / 2:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle" fill="#555">'
            f"{escape(g.label)}</text></g>"
        )
    parts_svg.append(_legend(parts))
    parts_svg.append("</svg>")
    return mark_safe("".join(parts_svg))


def _y_axis(ymax: float, plot_h: float) -> list[str]:
    out = []
    for i in range(6):
        v = ymax * i / 5
        y = TOP + plot_h - v / ymax * plot_h
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#555">{_num(v)}</text>')
    out.append(
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" stroke="#999"/>'
    )
    return out


LEGEND_ROW = 15  # px per legend row; a legend wider than the plot wraps onto more rows below it


def _legend_rows(parts: Sequence[Part]) -> list[list[tuple[float, Part]]]:
    """Each part's x, wrapped into rows that fit the chart's width."""
    rows: list[list[tuple[float, Part]]] = [[]]
    x = float(LEFT)
    for p in parts:
        width = 24 + 6.5 * len(p.label)
        if rows[-1] and x + width > WIDTH - RIGHT:
            rows.append([])
            x = float(LEFT)
        rows[-1].append((x, p))
        x += width
    return rows


def _legend(parts: Sequence[Part]) -> str:
    out = ['<g class="pb-legend">']
    for i, row in enumerate(_legend_rows(parts)):
        y = HEIGHT - 16 + i * LEGEND_ROW
        for x, p in row:
            out.append(
                f'<rect x="{x:.0f}" y="{y}" width="10" height="10" fill="{p.color}"/>'
                f'<text x="{x + 14:.0f}" y="{y + 9}" fill="#333">{escape(p.label)}</text>'
            )
    out.append("</g>")
    return "".join(out)


def _num(v: float) -> str:
    if v == 0:
        return "0"
    return f"{v:.2g}" if abs(v) < 10 else f"{v:,.0f}"


def sweep_bars(trials: Sequence[Any], prefix: str = "bars") -> list[SafeString]:
    """The two bar charts of a sweep page: the time split and the CPU of each party."""
    parts = time_parts(trials)
    return [
        bar_chart(
            "Where the time goes, in the server", "ms per request, mean", groups(trials, parts),
            parts, stacked=True, chart_id=f"{prefix}-time",
        ),
        bar_chart(
            "CPU of each party", "cores, mean in the window", groups(trials, CPU_PARTS), CPU_PARTS,
            stacked=False, chart_id=f"{prefix}-cpu",
        ),
    ]  # fmt: skip
