"""The server concurrency grid as an inline SVG heatmap (no JavaScript, nothing from a CDN)."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from poolbench.models import Trial
from poolbench.results.tables import GridCell, build_grid

CELL_W, CELL_H = 118, 44
LEFT, TOP = 120, 52


def _color(fraction: float) -> str:
    # White (slowest) to a saturated blue (fastest); the text stays readable on both ends.
    fraction = min(1.0, max(0.0, fraction))
    r = round(247 - fraction * (247 - 33))
    g = round(251 - fraction * (251 - 102))
    b = round(255 - fraction * (255 - 172))
    return f"#{r:02x}{g:02x}{b:02x}"


def grid_svg(trials: Iterable[Trial], *, title: str = "req/s by server concurrency and pool") -> str:
    """Render the sweep's grid (rows workers x threads, columns pool configuration) as an SVG string,
    for a page's HTML (no XML namespace: an inline SVG does not need one, and a report names no URL)."""
    grid = build_grid(trials)
    best = grid.best.rps if grid.best and grid.best.rps else 0.0
    # Shaded from the slowest to the fastest cell, so that differences of a few percent still show.
    worst = min((c.rps for c in grid.cells.values() if c.trials), default=0.0)
    width = LEFT + CELL_W * max(1, len(grid.columns)) + 10
    height = TOP + CELL_H * max(1, len(grid.rows)) + 10
    parts = [
        f'<svg class="poolbench-heatmap" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        'font-family="sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<text x="{LEFT}" y="16" font-weight="bold">{escape(title)}</text>',
        f'<text x="8" y="{TOP - 8}" fill="#555">workers x threads</text>',
    ]
    for j, col in enumerate(grid.columns):
        x = LEFT + j * CELL_W + CELL_W / 2
        parts.append(f'<text x="{x:.0f}" y="{TOP - 8}" text-anchor="middle">{escape(col)}</text>')
    for i, row in enumerate(grid.rows):
        y = TOP + i * CELL_H
        parts.append(f'<text x="8" y="{y + CELL_H / 2 + 4:.0f}">{row[0]} x {row[1]}</text>')
        for j, col in enumerate(grid.columns):
            cell = grid.cells.get((row, col))
            if cell is not None:
                parts.append(_cell(cell, row, col, LEFT + j * CELL_W, y, worst, best - worst))
    parts.append("</svg>")
    return "".join(parts)


def _cell(cell: GridCell, row: tuple[int, int], col: str, x: int, y: int, worst: float, span: float) -> str:
    fraction = (cell.rps - worst) / span if span > 0 else (1.0 if cell.trials else 0.0)
    fraction = 0.15 + 0.85 * fraction if cell.trials else 0.0
    fill = _color(fraction) if cell.trials else "#eeeeee"
    text_fill = "#ffffff" if fraction > 0.6 else "#111111"
    tip = f"{row[0]} workers x {row[1]} threads, {col}: {cell.rps:,.1f} req/s"
    if cell.max_connections is not None:
        tip += f", up to {cell.max_connections} DB connections"
    if cell.failures:
        tip += f", {cell.failures} failures"
    label = f"{cell.rps:,.0f}" if cell.trials else "failed"
    conns = f"{cell.max_connections} conns" if cell.max_connections is not None else ""
    return (
        f"<g><title>{escape(tip)}</title>"
        f'<rect x="{x}" y="{y}" width="{CELL_W - 2}" height="{CELL_H - 2}" fill="{fill}" '
        f'data-rps="{cell.rps:.1f}"/>'
        f'<text x="{x + CELL_W / 2:.0f}" y="{y + 18}" text-anchor="middle" fill="{text_fill}" '
        f'font-weight="bold">{escape(label)}{" !" if cell.failures else ""}</text>'
        f'<text x="{x + CELL_W / 2:.0f}" y="{y + 34}" text-anchor="middle" fill="{text_fill}">'
        f"{escape(conns)}</text></g>"
    )
