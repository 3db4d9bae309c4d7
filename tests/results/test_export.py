"""Exports and ``poolbench_report``, checked on their real output (PostgreSQL); the admin pages: test_admin.py."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from poolbench.models import Sweep, Trial
from poolbench.results import export
from tests.conftest import descendants
from tests.sample_sweeps import make_sweep, typical_sweep

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

# Export column -> Trial field (the same names).
FLOAT_COLUMNS = {
    c: c
    for c in ("rps", "failure_pct", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "latency_max_ms")
}
FLOAT_COLUMNS["duration_s"] = "duration_s"
INT_COLUMNS = {"pool_size": "pool_size", "requests": "requests", "failures": "failures", "workers": "workers"}


def _check_csv(text: str, sweeps: list[Sweep]) -> None:
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0].keys()) == export.COLUMNS
    trials = [t for s in sweeps for t in s.trials.order_by("index")]
    assert len(rows) == len(trials)
    for row, t in zip(rows, trials, strict=True):
        assert int(row["sweep_id"]) == t.sweep_id and int(row["trial_index"]) == t.index
        assert row["vendor"] == t.sweep.vendor and row["target"] == t.sweep.target
        for col, attr in FLOAT_COLUMNS.items():
            stored = getattr(t, attr)
            # Exactly the stored float, every digit, or empty where nothing was measured.
            assert (float(row[col]) if row[col] else None) == stored, (col, row[col], stored)
        for col, attr in INT_COLUMNS.items():
            assert int(row[col]) == getattr(t, attr)
        assert (float(row["best_rps"]) if row["best_rps"] else None) == t.sweep.best_rps


def _check_json(text: str, sweeps: list[Sweep]) -> None:
    records = json.loads(text)
    trials = [t for s in sweeps for t in s.trials.order_by("index")]
    assert [(r["sweep_id"], r["trial_index"]) for r in records] == [(t.sweep_id, t.index) for t in trials]
    for r, t in zip(records, trials, strict=True):
        for col, attr in {**FLOAT_COLUMNS, **INT_COLUMNS}.items():
            assert r[col] == getattr(t, attr), col
        assert r["errors"] == t.errors
        assert r["sizes"] == t.sweep.sizes
        assert r["trial_status"] == t.status


def test_csv_and_json_round_trip_the_stored_numbers():
    sweeps = [typical_sweep(), make_sweep([{"pool_size": 8, "rps": 1 / 3}], vendor="mysql", alias="mysql")]
    _check_csv(export.to_csv(sweeps), sweeps)
    _check_json(export.to_json(sweeps), sweeps)


def test_a_sweep_without_trials_still_has_a_row():
    sweep = make_sweep([], status=Sweep.Status.ERROR, message="the server did not start")
    rows = list(csv.DictReader(io.StringIO(export.to_csv([sweep]))))
    assert len(rows) == 1 and rows[0]["sweep_id"] == str(sweep.pk) and rows[0]["trial_index"] == ""
    assert json.loads(export.to_json([sweep]))[0]["sweep_status"] == "error"


# poolbench_report


def _report(*args: str) -> str:
    out = io.StringIO()
    call_command("poolbench_report", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_report_defaults_to_the_latest_sweep_as_a_table():
    old = typical_sweep(minutes_ago=600)
    new = make_sweep([{"pool_size": 4, "rps": 321.5}, {"pool_size": 8, "rps": 654.25}], minutes_ago=5)
    text = _report()
    assert text.startswith(f"Sweep #{new.pk} on postgresql://root@127.0.0.1:5432/test (alias default), ")
    assert f"#{old.pk}" not in text
    assert re.search(r"^1\s+pool 4\s+2x32\s+321\.5\s", text, re.M), text
    assert re.search(r"^2\s+pool 8\s+2x32\s+654\.2\s", text, re.M), text


def test_report_csv_and_json_to_files(tmp_path):
    a, b = typical_sweep(minutes_ago=90), make_sweep([{"pool_size": 3, "rps": 77.7}], minutes_ago=30)
    _report(str(a.pk), str(b.pk), "--format", "csv", "--output", str(tmp_path / "r.csv"))
    _check_csv((tmp_path / "r.csv").read_text(), [a, b])
    _report(str(b.pk), str(a.pk), "--format", "json", "-o", str(tmp_path / "r.json"))
    _check_json((tmp_path / "r.json").read_text(), [b, a])  # in the order asked for
    # To standard output as well.
    _check_json(_report(str(a.pk), "--format", "json"), [a])


def test_html_report_is_self_contained_with_one_point_per_trial(tmp_path):
    sweep = typical_sweep()
    _report(str(sweep.pk), "--format", "html", "--output", str(tmp_path / "r.html"))
    html = (tmp_path / "r.html").read_text()
    assert html.startswith("<!DOCTYPE html>")
    # Nothing to fetch: no script, no stylesheet link, no URL at all.
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert not re.search(r"https?:|\b(src|href|action)\s*=|url\(", html, re.I)
    # The requests/s chart: one circle per finished pooled trial, carrying the stored value.
    chart = re.search(r'<svg class="pb-chart" data-metric="rps".*?</svg>', html, re.S).group(0)
    points = [float(v) for v in re.findall(r'<circle class="pb-point"[^>]* data-rps="([^"]+)"', chart)]
    finished = [t.rps for t in sweep.trials.order_by("index") if t.status == Trial.Status.OK]
    assert points == finished and len(points) == 6
    # Four charts, the table and the recommendation.
    assert len(re.findall(r'<svg class="pb-chart"', html)) == 4
    assert html.count('<tr class="') == sweep.trials.count()
    assert "Recommended pool size: 16." in html
    assert "Not drawn: trial 7 (pool 50, error)" in html
    assert "PoolTimeout" in html


def test_html_report_of_two_sweeps_overlays_them(tmp_path):
    a, b = (
        typical_sweep(minutes_ago=90),
        make_sweep([{"pool_size": 3, "rps": 77.7}, {"pool_size": 9, "rps": 99.0}]),
    )
    html = _report(str(a.pk), str(b.pk), "--format", "html")
    compare = html.split('id="sweep-')[0]
    chart = re.search(r'<svg class="pb-chart" data-metric="rps".*?</svg>', compare, re.S).group(0)
    assert len(re.findall(rf'class="pb-point"[^>]* data-sweep="{a.pk}"', chart)) == 6
    assert len(re.findall(rf'class="pb-point"[^>]* data-sweep="{b.pk}"', chart)) == 2


def test_trials_without_a_pool_are_reference_lines():
    sweep = make_sweep(
        [
            {"pool_size": 4, "rps": 410.5},
            {"pool_size": 8, "rps": 820.25},
            {"pool_size": None, "mode": "none", "conn_max_age": 0, "rps": 301.125},
            {"pool_size": None, "mode": "persistent", "conn_max_age": 600, "rps": 777.0625},
        ]
    )
    html = export.to_html([sweep])
    chart = re.search(r'<svg class="pb-chart" data-metric="rps".*?</svg>', html, re.S).group(0)
    assert [float(v) for v in re.findall(r'<circle class="pb-point"[^>]* data-rps="([^"]+)"', chart)] == [
        410.5,
        820.25,
    ]
    refs = re.findall(
        r'<g class="pb-reference"[^>]* data-trial="(\d)"[^>]* data-rps="([^"]+)">.*?<text[^>]*>([^<]+)', chart
    )
    assert refs == [("3", "301.125", "no pool: 301.1"), ("4", "777.0625", "persistent: 777.1")]
    assert (
        "Dashed lines: trials without a pool (no pool (CONN_MAX_AGE=0), persistent (CONN_MAX_AGE=600))."
        in html
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["12345"], "no sweep with id 12345; the latest are {latest} (omit the id for the latest sweep)"),
        (["abc"], "sweep id 'abc' is not a whole number; give ids like 3 or 3 4 (see the admin)"),
        (
            ["--output", "/no/dir/r.html"],
            "--output /no/dir/r.html: directory /no/dir does not exist; create it or write elsewhere",
        ),
        (["--output", "/tmp"], "--output /tmp: is a directory; give a file name, e.g. /tmp/report.html"),
    ],
)
def test_report_errors(args, message):
    sweep = make_sweep([{"pool_size": 4, "rps": 1.5}])
    with pytest.raises(CommandError) as info:
        _report(*args)
    assert str(info.value) == message.format(latest=sweep.pk)


def test_report_without_any_sweep():
    with pytest.raises(CommandError) as info:
        _report()
    assert str(info.value) == "there are no sweeps yet; run `python manage.py poolbench` first"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--report", "/no/dir/r.html"],
            "--report /no/dir/r.html: directory /no/dir does not exist; create it or write elsewhere",
        ),
        (
            ["--json", "/no/dir/r.json"],
            "--json /no/dir/r.json: directory /no/dir does not exist; create it or write elsewhere",
        ),
        (["--json", "/tmp"], "--json /tmp: is a directory; give a file name, e.g. /tmp/report.html"),
    ],
)
def test_sweep_output_paths_are_checked_before_anything_runs(args, message):
    before = descendants()
    with pytest.raises(CommandError) as info:
        call_command("poolbench", "--sizes", "2", *args)
    assert str(info.value) == message
    assert not Sweep.objects.exists() and descendants() <= before


def test_sweep_refuses_one_file_for_both_outputs(tmp_path):
    with pytest.raises(CommandError) as info:
        call_command(
            "poolbench", "--sizes", "2", "--report", str(tmp_path / "x"), "--json", str(tmp_path / "x")
        )
    assert str(info.value) == "--report and --json name the same file; give each its own path"
    assert not Sweep.objects.exists()


# The admin's export actions (the rest of the admin: test_admin.py).


def test_export_actions_return_the_stored_numbers(viewer):
    a, b = typical_sweep(minutes_ago=90), make_sweep([{"pool_size": 3, "rps": 2 / 3}], minutes_ago=10)
    url = reverse("admin:poolbench_sweep_changelist")
    for action, check in (("export_csv", _check_csv), ("export_json", _check_json)):
        response = viewer.post(url, {"action": action, "_selected_action": [b.pk, a.pk]})
        assert response.status_code == 200
        assert response["Content-Disposition"].startswith('attachment; filename="poolbench-sweeps-')
        check(response.content.decode(), [a, b])  # oldest first


# Results as columns: the per-size rows, the exported columns, the heatmap of a grid.


def grid_sweep() -> Sweep:
    """Two pool sizes on two server shapes (1x8 and 2x8): a grid."""
    return make_sweep(
        [
            {"pool_size": size, "rps": rps, "workers": workers, "threads": 8}
            for workers, size, rps in ((1, 4, 210.5), (1, 8, 240.25), (2, 4, 390.0), (2, 8, 455.75))
        ]
    )


def test_html_report_shows_the_heatmap_of_a_grid_only():
    grid, single = grid_sweep(), typical_sweep()
    html = export.to_html([grid])
    svg = re.search(r'<svg class="poolbench-heatmap".*?</svg>', html, re.S).group(0)
    assert svg.count("<rect") == 4
    assert sorted(float(v) for v in re.findall(r'data-rps="([^"]+)"', svg)) == [210.5, 240.2, 390.0, 455.8]
    assert "1 x 8" in svg and "2 x 8" in svg and "Server concurrency grid" in html
    # Still self-contained: the inline SVG names no namespace URL.
    assert not re.search(r"https?:", html)
    assert "poolbench-heatmap" not in export.to_html([single])
    # The sweep page of the admin shows it too (same context).
    assert export.sweep_context(grid)["heatmap"] and not export.sweep_context(single)["heatmap"]


def test_size_summary_rows_of_a_sweep():
    sweep = typical_sweep()
    rows = list(sweep.size_summaries.order_by("position"))
    assert [(r.mode, r.size, r.trials) for r in rows] == [
        ("pool", 5, 1), ("pool", 10, 3), ("pool", 16, 1), ("pool", 200, 1),
    ]  # fmt: skip
    ten = rows[1]
    rps = sorted(t.rps for t in sweep.trials.filter(pool_size=10))
    assert (ten.rps, ten.rps_min, ten.rps_max) == (round(rps[1], 2), rps[0], rps[2])
    assert ten.rps_cv is not None and rows[0].rps_cv is None
    assert [r.size for r in rows if r.recommended] == [16]
    assert [r.size for r in rows if r.on_plateau] == [16]
    assert rows[3].failures == 37 and not rows[3].on_plateau
    assert sweep.by_mode() == {
        "pool": {"failures": 37, "recommended_size": 16, "best_size": 16, "best_rps": 1103.25}
    }
    # The HTML report lists them (the trials table keeps one <tr class=...> per trial).
    html = export.to_html([sweep])
    assert len(re.findall(r'<tr data-mode="pool" data-size="\d+"', html)) == 4


def test_modes_without_a_pool_get_a_row_without_a_size():
    sweep = make_sweep(
        [
            {"pool_size": 4, "rps": 410.5},
            {"pool_size": None, "mode": "persistent", "conn_max_age": 600, "rps": 777.0625},
            {"pool_size": None, "mode": "persistent", "conn_max_age": 600, "rps": 780.5},
        ]
    )
    rows = list(sweep.size_summaries.order_by("position"))
    assert [(r.mode, r.size, r.trials, r.rps_max) for r in rows] == [
        ("pool", 4, 1, 410.5), ("persistent", None, 2, 780.5),
    ]  # fmt: skip
    assert sweep.by_mode()["persistent"] == {"failures": 0, "best_rps": 780.5}


def test_exports_carry_the_result_columns():
    sweep = make_sweep([{"pool_size": 4, "rps": 100.5, "mean_connections": 3.25, "db_mean_ms": 1 / 3}])
    sweep.gate_size, sweep.gate_passed, sweep.gate_breaches = 4, False, ["--max-p99-ms 1: trial 1 (pool 4)"]
    sweep.save()
    row = next(csv.DictReader(io.StringIO(export.to_csv([sweep]))))
    assert (row["peak_db_connections"], row["mean_db_connections"]) == ("8", "3.25")
    assert float(row["db_mean_ms"]) == 1 / 3 and row["acquire_mean_ms"] == ""
    assert (row["gate_size"], row["gate_passed"]) == ("4", "False")
    record = json.loads(export.to_json([sweep]))[0]
    assert record["gate_breaches"] == ["--max-p99-ms 1: trial 1 (pool 4)"] and record["db_mean_ms"] == 1 / 3
