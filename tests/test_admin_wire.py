"""Issue 15's last parts in headless Chromium: a stored rate-mode sweep's target/achieved rates and SLO
verdicts, a stored capacity search's table and bar chart, a stored 4-size sweep's USL curve on the req/s
chart with its figures, the saturation columns and the decision's vs-best ratio, on the sweep page and in
the self-contained report. Numbers are read back from the page and checked against the stored rows (and
the USL figures against a fit of the stored points, and against the law the rows were generated from)."""

from __future__ import annotations

import json
import re

import pytest

from poolbench.models import SizeCapacity, Sweep
from poolbench.results import export, slo, usl
from tests.sample_sweeps import make_sweep
from tests.test_admin_browser import ARTIFACTS, login, page, viewer  # noqa: F401  (page: a fixture)

pytestmark = [pytest.mark.postgres]

TARGETS = "p99<100ms,errors<1%"


def cells(pg, selector: str, attr: str) -> list[str]:
    return pg.locator(selector).evaluate_all(f"els => els.map(e => e.dataset.{attr})")


def rate_sweep() -> Sweep:
    """Sizes 4, 8, 16 at 500 req/s: 4 misses p99 and was not offered its rate, 8 misses errors, 16 meets."""
    specs = [
        {"pool_size": 4, "rps": 402.123, "p99": 260.5, "achieved_rate": 402.123, "late_requests": 911,
         "dropped_requests": 75, "rate_offered": False},
        {"pool_size": 8, "rps": 497.25, "p99": 61.25, "failures": 80, "achieved_rate": 499.75,
         "late_requests": 3, "dropped_requests": 0, "rate_offered": True},
        {"pool_size": 16, "rps": 499.5, "p99": 48.0, "achieved_rate": 500.5, "late_requests": 0,
         "dropped_requests": 0, "rate_offered": True},
    ]  # fmt: skip
    sweep = make_sweep(
        [{**s, "target_rate": 500.0, "arrivals": "poisson"} for s in specs],
        options={"slo": TARGETS.split(",")}, recommended_size=16, recommendation="Size 16 met every target.",
    )  # fmt: skip
    targets = slo.parse_slo(TARGETS)
    for t in sweep.trials.all():  # judged by the real code, as record_rate does
        t.slo_results = slo.judge(t, targets)
        t.slo_passed = slo.passed(t.slo_results) and t.rate_offered is not False
        t.save()
    return sweep


def test_rate_mode_sweep_shows_target_achieved_and_each_slo_verdict(page, live_server, tmp_path):  # noqa: F811
    sweep = rate_sweep()
    viewer()
    login(page, live_server, "viewer")
    page.goto(f"{live_server.url}/admin/poolbench/sweep/{sweep.pk}/change/")
    table = page.locator("#pb-rate")
    heads = table.locator("thead th").all_text_contents()
    assert heads[-3:] == ["p99<100ms", "errors<1%", "SLO"]
    trials = list(sweep.trials.order_by("index"))
    assert [float(v) for v in cells(page, "#pb-rate tbody tr", "achieved")] == [
        t.achieved_rate for t in trials
    ]
    assert [float(v) for v in cells(page, "#pb-rate tbody tr", "target")] == [500.0] * 3
    assert table.locator("td.pb-late").all_inner_texts() == ["911", "3", "0"]
    assert table.locator("td.pb-dropped").all_inner_texts() == ["75", "0", "0"]
    assert table.locator("td.pb-offered").all_inner_texts() == ["rate not offered", "yes", "yes"]
    # Each target's verdict, as judged and stored: size 4 misses p99, size 8 the error rate.
    passed = [cells(page, f'#pb-rate tbody tr[data-trial="{t.index}"] td.pb-slo', "passed") for t in trials]
    assert passed == [["0", "1"], ["1", "0"], ["1", "1"]]
    assert passed == [[str(int(v["passed"])) for v in t.slo_results] for t in trials]
    assert table.locator("td.pb-slo-all").all_inner_texts() == ["missed", "missed", "met"]
    row4 = table.locator('tbody tr[data-trial="1"]').inner_text()
    assert "FAIL (260 ms)" in row4 and "0.804" in row4  # 402.123 / 500
    errors8 = table.locator('tbody tr[data-trial="2"] td.pb-slo').nth(1)
    assert float(errors8.get_attribute("data-value")) == trials[1].failure_pct
    page.screenshot(path=str(ARTIFACTS / "admin-rate-slo.png"), full_page=True)
    # The report: the same table, offline.
    report = tmp_path / "report.html"
    report.write_text(export.to_html(export.load_trials_of([sweep])), encoding="utf-8")
    page.goto(report.as_uri())
    assert page.locator("#pb-rate td.pb-offered").all_inner_texts() == ["rate not offered", "yes", "yes"]
    assert page.locator("#pb-rate td.pb-slo-all").all_inner_texts() == ["missed", "missed", "met"]
    page.screenshot(path=str(ARTIFACTS / "report-rate-slo.png"), full_page=True)


def capacity_sweep() -> Sweep:
    sweep = make_sweep(
        [{"pool_size": s, "rps": r, "target_rate": r, "achieved_rate": r, "rate_offered": True} for s, r in ((4, 300.0), (8, 610.0), (16, 640.0), (32, 0.5))],
        options={"slo": ["p99<100ms"]}, recommended_size=8,
    )  # fmt: skip
    found = {4: 312.5, 8: 618.75, 16: 640.125, 32: None}
    for size, cap in found.items():
        SizeCapacity.objects.create(
            sweep=sweep, mode="pool", workers=2, threads=32, size=size, capacity_rps=cap,
            bound_rps=size * 100.0, trials=3,
            steps=[{"rate": 300.0, "passed": cap is not None}, {"rate": 700.0, "passed": False}],
            best=size == 16, recommended=size == 8,
        )  # fmt: skip
    return sweep


def test_capacity_sweep_shows_table_and_bars_with_best_and_recommended(page, live_server, tmp_path):  # noqa: F811
    sweep = capacity_sweep()
    stored = list(sweep.capacities.order_by("size"))
    viewer()
    login(page, live_server, "viewer")
    page.goto(f"{live_server.url}/admin/poolbench/sweep/{sweep.pk}/change/")
    bars = "#chart-capacity g.pb-capacity-bar"
    assert [int(v) for v in cells(page, bars, "size")] == [c.size for c in stored]
    got = cells(page, bars, "value")
    assert [float(v) if v else None for v in got] == [c.capacity_rps for c in stored]
    assert cells(page, bars, "best") == ["0", "0", "1", "0"]
    assert cells(page, bars, "recommended") == ["0", "1", "0", "0"]
    # Bar heights proportional to the stored capacities (16's bar the tallest, 32's empty).
    heights = [page.locator(bars).nth(i).locator("rect").bounding_box()["height"] for i in range(4)]
    assert heights[1] / heights[2] == pytest.approx(618.75 / 640.125, rel=0.02) and heights[3] == 0
    marks = page.locator("#pb-capacity td.pb-mark").all_inner_texts()
    assert marks == ["-", "recommended (smallest within tolerance)", "best", "-"]
    assert "none met" in page.locator('#pb-capacity tr[data-size="32"]').inner_text()
    assert "300+, 700-" in page.locator('#pb-capacity tr[data-size="8"]').inner_text()
    page.screenshot(path=str(ARTIFACTS / "admin-capacity.png"), full_page=True)
    page.locator("#chart-capacity").screenshot(path=str(ARTIFACTS / "admin-capacity-chart.png"))
    report = tmp_path / "report.html"
    report.write_text(export.to_html(export.load_trials_of([sweep])), encoding="utf-8")
    page.goto(report.as_uri())
    got = cells(page, f"#sweep{sweep.pk}-capacity g.pb-capacity-bar", "value")
    assert [float(v) if v else None for v in got] == [c.capacity_rps for c in stored]


SIGMA, KAPPA, LAMBDA = 0.05, 0.002, 120.0


def usl_sweep() -> Sweep:
    """Five sizes whose req/s follow a known USL of the connections each used, size 8 twice."""
    used = {2: 2.0, 4: 4.0, 8: 7.5, 16: 15.0, 32: 28.0}
    specs = []
    for size, n in list(used.items()) + [(8, 7.5)]:
        x = float(usl.usl(n, LAMBDA, SIGMA, KAPPA))
        specs.append({"pool_size": size, "rps": x, "mean_connections": n})
    specs[2].update(host_cores=1.97, host_cpu_saturated=True, load_lag_ms=12.25, load_lag_p99_ms=48.5,
                    load_lag_max_ms=95.0)  # fmt: skip
    return make_sweep(specs, seed=424242, recommended_size=16)


def test_usl_curve_on_the_rps_chart_with_its_figures(page, live_server, tmp_path):  # noqa: F811
    sweep = usl_sweep()
    trials = list(sweep.trials.order_by("index"))
    viewer()
    login(page, live_server, "viewer")
    page.goto(f"{live_server.url}/admin/poolbench/sweep/{sweep.pk}/change/")
    curve = page.locator('svg.pb-chart[data-metric="rps"] polyline.pb-usl')
    assert curve.count() == 1
    # The fit recovers the law the rows were made from, and the page prints the fit of the stored points.
    sigma, kappa = float(curve.get_attribute("data-sigma")), float(curve.get_attribute("data-kappa"))
    assert sigma == pytest.approx(SIGMA, rel=1e-3) and kappa == pytest.approx(KAPPA, rel=1e-3)
    expected = usl.sweep_fit(trials)
    assert float(curve.get_attribute("data-r2")) == pytest.approx(1.0, abs=1e-9)
    points = json.loads(curve.get_attribute("data-points"))
    assert [p[0] for p in points] == [2, 4, 8, 16, 32] and [p[1] for p in points] == [
        2.0,
        4.0,
        7.5,
        15.0,
        28.0,
    ]
    for size, _, fitted in points:  # over each size, the fitted value is that size's stored req/s
        assert fitted == pytest.approx(next(t.rps for t in trials if t.pool_size == size), rel=1e-6)
    # The curve passes through the chart's own point of each size (same axes).
    vertices = [tuple(map(float, p.split(","))) for p in curve.get_attribute("points").split()]
    for size in (2, 16):
        dot = page.locator(f'svg.pb-chart[data-metric="rps"] circle.pb-point[data-size="{size}"]').first
        cx, cy = float(dot.get_attribute("cx")), float(dot.get_attribute("cy"))
        assert min(abs(vx - cx) + abs(vy - cy) for vx, vy in vertices) < 1.0, size
    text = page.locator("#pb-usl").inner_text()
    n_star = (1 - SIGMA) ** 0.5 / KAPPA**0.5
    assert f"sigma {expected.sigma:.4f}, kappa {expected.kappa:.6f}" in text
    assert f"N* {n_star:.1f} connections" in text and "R² 1.000" in text
    assert "Predicted peak" in text  # the fit's sentence, as the terminal prints it
    # Saturation columns, vs best, the seed.
    row = page.locator("#trials-group tr.has_original").nth(2).inner_text()
    assert "1.97 saturated" in row and "12.2/48.5/95.0" in row
    sizes = sweep.size_summaries.exclude(vs_best=None)
    assert sizes.exists()
    got = [float(v) for v in cells(page, "#size_summaries-group .pb-vs-best", "vsBest") if v != "None"]
    assert got == [s.vs_best for s in sweep.size_summaries.all() if s.vs_best is not None]
    assert "424242" in page.locator("#content").inner_text()
    page.screenshot(path=str(ARTIFACTS / "admin-usl.png"), full_page=True)
    page.locator('svg.pb-chart[data-metric="rps"]').screenshot(path=str(ARTIFACTS / "admin-usl-chart.png"))
    page.goto(f"{live_server.url}/admin/poolbench/trial/{trials[2].pk}/change/")
    headline = page.locator("#pb-headline").inner_text()
    assert re.search(r"host CPU\s+1.97 cores saturated", headline)
    assert re.search(r"load generator lag\s+12.2/48.5/95.0 ms", headline)
    page.screenshot(path=str(ARTIFACTS / "admin-trial-saturation.png"), full_page=True)
    report = tmp_path / "report.html"
    report.write_text(export.to_html(export.load_trials_of([sweep])), encoding="utf-8")
    page.goto(report.as_uri())
    assert page.locator(f"#sweep{sweep.pk}-rps polyline.pb-usl").count() == 1
    assert "1.97 saturated" in page.locator(f'#sweep-{sweep.pk} tr[data-trial="3"] td.pb-host').inner_text()
    assert "424242" in page.locator(f"#pb-seed-{sweep.pk}").inner_text()
    page.screenshot(path=str(ARTIFACTS / "report-usl.png"), full_page=True)


def test_a_poor_fit_is_printed_not_drawn(transactional_db):
    # Throughput that zigzags: no law fits it; the report says so and draws no curve.
    sweep = make_sweep(
        [{"pool_size": s, "rps": r, "mean_connections": float(s)} for s, r in ((2, 900.0), (4, 200.0),
                                                                               (8, 950.0), (16, 150.0))]
    )  # fmt: skip
    html = export.to_html(export.load_trials_of([sweep]))
    assert "pb-usl" in html and 'class="pb-usl"' not in html
    assert "The fit is poor" in html and "Not drawn: the fit is poor." in html


def test_data_that_do_not_bend_are_drawn_and_say_no_peak_in_range(transactional_db):
    # Throughput proportional to the connections in use: kappa 0, the curve drawn, no peak claimed.
    sweep = make_sweep(
        [{"pool_size": s, "rps": 100.0 * s, "mean_connections": float(s)} for s in (2, 4, 8, 16)]
    )
    html = export.to_html(export.load_trials_of([sweep]))
    assert html.count('class="pb-usl"') == 1
    assert "no peak within the measured range" in html and "Predicted peak" not in html
    f = usl.sweep_fit(list(sweep.trials.all()))
    assert not f.peak_in_range and f.kappa == pytest.approx(0.0, abs=1e-6)
    assert ("none (kappa 0)" if f.n_star is None else f"{f.n_star:.1f} connections") in html


def test_sizes_that_share_a_concurrency_say_the_fit_was_not_done(transactional_db):
    # Pools of 4 and 8 that both used 8 connections (as a real busy-machine sweep did): 3 concurrencies.
    used = {2: 4.0, 4: 8.0, 8: 8.0, 16: 16.0}
    sweep = make_sweep([{"pool_size": s, "rps": 900.0 + s, "mean_connections": n} for s, n in used.items()])
    html = export.to_html(export.load_trials_of([sweep]))
    assert "USL fit: not done: the 4 sizes used only 3 distinct concurrencies." in html
    assert 'class="pb-usl"' not in html
