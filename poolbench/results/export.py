"""Sweeps out of the database: CSV, JSON, a terminal table and a self-contained HTML report.

One module for the admin's export actions, ``manage.py poolbench_report`` and ``poolbench --report/--json``,
so that all three write the same columns and the same numbers. CSV and JSON have one row (object) per trial,
carrying its sweep's fields; numbers are written exactly as stored (``repr`` of the float), so they read back
equal. A sweep without any trial still gets one row, with the trial columns empty.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import secrets
import shutil
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import mark_safe

from poolbench import __version__
from poolbench.models import Sweep
from poolbench.results import analysis, barcharts, charts, sweepextras
from poolbench.results.heatmap import grid_svg
from poolbench.results.tables import sweep_summary, trials_table
from poolbench.wire import TIMING_PARTS

FORMATS = ("table", "csv", "json", "html")

# (column, attribute of Sweep)
SWEEP_COLUMNS: list[tuple[str, str]] = [
    ("sweep_id", "pk"),
    ("sweep_started_at", "started_at"),
    ("sweep_finished_at", "finished_at"),
    ("sweep_status", "status"),
    ("vendor", "vendor"),
    ("alias", "alias"),
    ("target", "target"),
    ("embedded", "embedded"),
    ("db_version", "db_version"),
    ("db_max_connections", "db_max_connections"),
    ("sizes", "sizes"),
    ("best_size", "best_size"),
    ("best_rps", "best_rps"),
    ("recommended_size", "recommended_size"),
    ("recommendation", "recommendation"),
    ("formula_connections", "formula_connections"),
    ("formula_per_worker", "formula_per_worker"),
    ("gate_size", "gate_size"),
    ("gate_passed", "gate_passed"),
    ("gate_breaches", "gate_breaches"),
    ("command", "command"),
]
# (column, attribute of Trial)
TRIAL_COLUMNS: list[tuple[str, str]] = [
    ("trial_index", "index"),
    ("repeat", "repeat"),
    ("trial_status", "status"),
    ("config", "label"),
    ("mode", "mode"),
    ("pool_size", "pool_size"),
    ("pool_min", "pool_min"),
    ("max_overflow", "max_overflow"),
    ("pool_timeout", "pool_timeout"),
    ("conn_max_age", "conn_max_age"),
    ("workers", "workers"),
    ("threads", "threads"),
    ("max_db_connections", "max_db_connections"),
    ("users", "users"),
    ("duration_s", "duration_s"),
    ("requests", "requests"),
    ("failures", "failures"),
    ("failure_pct", "failure_pct"),
    ("rps", "rps"),
    ("latency_avg_ms", "latency_avg_ms"),
    ("latency_min_ms", "latency_min_ms"),
    ("latency_p50_ms", "latency_p50_ms"),
    ("latency_p90_ms", "latency_p90_ms"),
    ("latency_p95_ms", "latency_p95_ms"),
    ("latency_p99_ms", "latency_p99_ms"),
    ("latency_p999_ms", "latency_p999_ms"),
    ("latency_max_ms", "latency_max_ms"),
    ("load_bound", "load_bound"),
    ("peak_db_connections", "peak_connections"),
    ("mean_db_connections", "mean_connections"),
    *((f"{part}_{kind}_ms", f"{part}_{kind}_ms") for part in TIMING_PARTS for kind in ("mean", "p95")),
    ("load_cores", "load_cores"),
    ("server_cores", "server_cores"),
    ("database_cores", "database_cores"),
    ("server_start_s", "server_start_s"),
    ("warmup_s", "warmup_s"),
    ("trial_started_at", "started_at"),
    ("trial_finished_at", "finished_at"),
]
# Derived from JSON fields, flat enough for a spreadsheet.
EXTRA_COLUMNS = ["error_count", "top_error"]
COLUMNS = [c for c, _ in SWEEP_COLUMNS] + [c for c, _ in TRIAL_COLUMNS] + EXTRA_COLUMNS
# Kept whole in JSON only.
TRIAL_JSON_FIELDS = ["errors", "notes", "error_text", "pool_stats", "db_stats", "cpu", "overhead", "timeline"]


def _value(obj: Any, attr: str) -> Any:
    value = getattr(obj, attr)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def trial_records(sweeps: Sequence[Sweep]) -> list[dict[str, Any]]:
    """One dict per trial, in sweep then trial order; a sweep without trials gives one, trial fields empty."""
    records = []
    for sweep in sweeps:
        head = {col: _value(sweep, attr) for col, attr in SWEEP_COLUMNS}
        trials = sorted(sweep.trials.all(), key=lambda t: t.index)
        if not trials:
            records.append({**head, **dict.fromkeys([c for c, _ in TRIAL_COLUMNS] + EXTRA_COLUMNS)})
            continue
        for t in trials:
            row = {**head, **{col: _value(t, attr) for col, attr in TRIAL_COLUMNS}}
            row["error_count"] = sum(e.get("count", 0) for e in t.errors or [])
            top = max(t.errors or [], key=lambda e: e.get("count", 0), default=None)
            row["top_error"] = top["message"][:300] if top else ""
            for name in TRIAL_JSON_FIELDS:
                row[name] = getattr(t, name)
            records.append(row)
    return records


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as the same float
    if isinstance(value, (list, dict)):
        if all(isinstance(v, int) for v in value) and isinstance(value, list):
            return ",".join(str(v) for v in value)
        return json.dumps(value, sort_keys=True)
    return value


def to_csv(sweeps: Sequence[Sweep]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in trial_records(sweeps):
        writer.writerow([_csv_cell(row.get(c)) for c in COLUMNS])
    return out.getvalue()


def to_json(sweeps: Sequence[Sweep]) -> str:
    return json.dumps(trial_records(sweeps), indent=2, ensure_ascii=False) + "\n"


def to_table(sweeps: Sequence[Sweep]) -> str:
    blocks = []
    for sweep in sweeps:
        trials = sorted(sweep.trials.all(), key=lambda t: t.index)
        embedded = ", embedded" if sweep.embedded else ""
        lines = [
            f"Sweep #{sweep.pk} on {sweep.target} (alias {sweep.alias}{embedded}), "
            f"{sweep.started_at:%Y-%m-%d %H:%M} UTC, {sweep.status}",
            trials_table(trials) if trials else "(no trials)",
            *sweep_summary(sweep),
        ]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def sweep_context(sweep: Sweep, prefix: str = "chart") -> dict[str, Any]:
    """What a page needs to show one sweep: its trials, the four charts against pool size, the time-split
    and CPU bars, the answer's formula, the grid's heatmap, the per-size summary, what could not be drawn."""
    series = charts.series_for([sweep])
    trials = sorted(sweep.trials.all(), key=lambda t: t.index)
    grid = len({(t.workers, t.threads) for t in trials}) > 1
    fit = sweepextras.usl_context(trials)
    overlay = (fit or {}).get("overlay")
    return {
        "sweep": sweep,
        "trials": trials,
        "charts": charts.charts(series, prefix=prefix, overlays={"rps": overlay} if overlay else None),
        "bars": barcharts.sweep_bars(trials, prefix=f"{prefix}-bars"),
        "formula_text": analysis.formula_text(sweep.formula) if sweep.formula else "",
        # What limited the site (issue 13's bottleneck line); empty for sweeps stored before it.
        "bottleneck": sweep.bottleneck,
        # Several workers x threads: req/s of each (concurrency, pool) cell as a heatmap.
        "heatmap": mark_safe(grid_svg(trials)) if grid else "",
        "sizes": [s for s in sweep.size_summaries.all() if s.size is not None],
        "unplotted": series[0].unplotted,
        "references": series[0].references,
        "top_errors": top_errors(sweep),
        # Rate mode and --slo, --find-capacity and the USL fit (results/sweepextras.py); None without.
        "rate": sweepextras.rate_context(trials),
        "capacity": sweepextras.capacity_context(sweep, prefix=prefix),
        "usl": fit,
    }


def top_errors(sweep: Sweep, limit: int = 5) -> list[tuple[int, str]]:
    """The most frequent error messages over the sweep's trials, as (count, message)."""
    counts: dict[str, int] = {}
    for t in sweep.trials.all():
        for e in t.errors or []:
            counts[e["message"]] = counts.get(e["message"], 0) + e["count"]
    return [(n, m) for m, n in sorted(counts.items(), key=lambda kv: -kv[1])[:limit]]


def compare_context(sweeps: Sequence[Sweep]) -> dict[str, Any]:
    series = charts.series_for(sweeps)
    colors = {s.sweep_id: s.color for s in reversed(series)}  # a sweep's first series gives its colour
    first = sweeps[0].recommended_size if sweeps else None
    return {
        "series": series,
        "charts": charts.charts(series, prefix="compare"),
        "rows": [
            {
                "sweep": sw,
                "color": colors.get(sw.pk, charts.PALETTE[0]),
                "trials": sum(len(s.trials) for s in series if s.sweep_id == sw.pk),
                # The recommended size against the first sweep's, the comparison's reference.
                "reco_diff": (
                    None if sw.recommended_size is None or first is None else sw.recommended_size - first
                ),
            }
            for sw in sweeps
        ],
        "size_rows": size_rows(sweeps),
    }


def size_rows(sweeps: Sequence[Sweep]) -> list[dict[str, Any]]:
    """Per pool size, each sweep's by-size summary side by side (None where it did not run that size)."""
    by_sweep: list[dict[int, Any]] = []
    for sw in sweeps:
        got: dict[int, Any] = {}
        for s in sw.size_summaries.all():
            if s.size is not None:
                got.setdefault(s.size, s)  # the sweep's first mode and server, as it ran them
        by_sweep.append(got)
    sizes = sorted({size for got in by_sweep for size in got})
    return [{"size": size, "cells": [got.get(size) for got in by_sweep]} for size in sizes]


def to_html(sweeps: Sequence[Sweep]) -> str:
    """One self-contained page: inline CSS and SVG, no script, no external URL."""
    context = {
        "sweeps": [sweep_context(s, prefix=f"sweep{s.pk}") for s in sweeps],
        "compare": compare_context(sweeps) if len(sweeps) > 1 else None,
        "generated_at": timezone.now(),
        "version": __version__,
    }
    return render_to_string("poolbench/report.html", context)


def render(sweeps: Sequence[Sweep], fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    return {"table": to_table, "csv": to_csv, "json": to_json, "html": to_html}[fmt](sweeps)


# What the start of a file poolbench wrote looks like, by format: an existing file that matches none of
# these is someone else's and is not replaced without --overwrite.
HTML_MARKER = "<!-- poolbench report -->"
_WRITTEN_BY_US = (
    re.compile(r"<!DOCTYPE html>\s*" + re.escape(HTML_MARKER)),  # html (report.html's second line)
    re.compile(r"\[\s*(\]|\{\s*\"sweep_id\":)"),  # json: a list of trial records, or []
    re.compile(re.escape(",".join(COLUMNS[:3])) + ","),  # csv: the header row
    re.compile(r"Sweep #\d+ on "),  # table
)
_SQLITE_SUFFIXES = ("", "-journal", "-wal", "-shm")


class ExportError(ValueError):
    """An output path that cannot be written; the message names the fix."""


def check_output_path(path: str | os.PathLike[str], option: str, *, overwrite: bool = True) -> Path:
    """Refuse an output path that cannot be written, before any work starts: a directory, a missing or
    read-only directory, a file of a configured SQLite database (never, whatever ``overwrite`` says) and,
    unless ``overwrite``, an existing file that poolbench did not write."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise ExportError(f"{option} {path}: is a directory; give a file name, e.g. {p / 'report.html'}")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ExportError(f"{option} {path}: directory {parent} does not exist; create it or write elsewhere")
    alias = database_file_alias(p)
    if alias is not None:
        raise ExportError(
            f"{option} {path}: that is the SQLite database file of DATABASES[{alias!r}] (writing there would "
            "destroy the database); write the report to another file, e.g. report.html"
        )
    if not os.access(parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise ExportError(f"{option} {path}: cannot write there (permission denied); choose a writable path")
    if not overwrite and p.exists() and not written_by_poolbench(p):
        raise ExportError(
            f"{option} {path}: the file exists and is not a report poolbench wrote; choose another file "
            "name, or add --overwrite to replace it"
        )
    return p


def database_file_alias(path: Path) -> str | None:
    """The alias of the configured SQLite database whose file (or journal) ``path`` is, else None."""
    from django.conf import settings

    target = path.resolve()
    for alias, entry in settings.DATABASES.items():
        if "sqlite" not in str(entry.get("ENGINE", "")) and "spatialite" not in str(entry.get("ENGINE", "")):
            continue
        names = [entry.get("NAME"), (entry.get("TEST") or {}).get("NAME")]
        for name in filter(None, map(str, names)):
            if name.startswith("file:"):  # a URI filename: file:res.sqlite3?mode=rwc
                name = name[5:].split("?", 1)[0]
            if not name or name == ":memory:" or "mode=memory" in name:
                continue
            for suffix in _SQLITE_SUFFIXES:
                db_file = Path(name + suffix).expanduser()
                if db_file.resolve() == target or _same_file(db_file, path):
                    return str(alias)
    return None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)  # a hard link, or another spelling of the path
    except OSError:
        return False


def written_by_poolbench(path: Path) -> bool:
    """True if ``path`` is empty or starts the way one of poolbench's exports does."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096).decode("utf-8", "replace").lstrip("\ufeff")
    except OSError:
        return False
    return not head or any(p.match(head) for p in _WRITTEN_BY_US)


def write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: into a new file in the same directory, then renamed over
    it, so that a reader (or a crash) never sees half a report and a failed write leaves the old file."""
    parent = path.parent if str(path.parent) else Path(".")
    tmp = parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():
            shutil.copymode(path, tmp)  # replacing a report keeps its permissions
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_trials_of(sweeps: Sequence[Sweep]) -> list[Sweep]:
    """The sweeps with their trials fetched in one query each way."""
    ids = [s.pk for s in sweeps]
    fetched = {
        s.pk: s
        for s in Sweep.objects.filter(pk__in=ids).prefetch_related("trials", "size_summaries", "capacities")
    }
    return [fetched[i] for i in ids if i in fetched]
