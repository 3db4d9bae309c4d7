"""Each admin page in headless Chromium (issue 15): the sweep page's answer, by-size table and bars, the
trial page's latency distribution, timeline and labelled tables, the sweep list with a running sweep and
its filters, the compare page, and the same charts in the HTML report. Chart points are read back from the
page's ``data-*`` attributes and checked against the stored rows; every test saves a screenshot.
"""

from __future__ import annotations

import re
from statistics import median

import pytest

from poolbench.models import Sweep, Trial
from poolbench.results import export
from tests.sample_sweeps import make_sweep, typical_sweep
from tests.test_admin_browser import ARTIFACTS, login, page, viewer  # noqa: F401  (page: a fixture)

pytestmark = [pytest.mark.postgres]

HISTOGRAM = {"7": 40, "12": 310, "19": 522, "23": 300, "41": 120, "88": 30, "150": 9, "420": 3}
TIMELINE = {
    "start": 1764590000,
    "measure_start_s": 1.613,
    "measure_end_s": 5.629,
    "seconds": [
        {"t": t, "requests": n, "failures": f, "mean_ms": m, "p50_ms": 19.0, "p95_ms": p, "connections": c,
         "partial": t in (0, 5)}
        for t, n, f, m, p, c in ((0, 120, 0, 31.25, 88.0, 3), (1, 301, 1, 22.123456, 41.0, 6),
                                 (2, 333, 0, 19.5, 41.0, 8), (3, 327, 2, 20.75, 88.0, 8),
                                 (4, 318, 0, 21.0, 41.0, 8), (5, 200, 0, 23.0, 150.0, 8))
    ],
}  # fmt: skip
DB_STATS = {"counted": "pg_stat_activity, application_name", "samples": 25, "peak_connections": 8,
            "mean_connections": 7.958333333333333}  # fmt: skip
RICH = {
    "response_times": HISTOGRAM, "timeline": TIMELINE, "latency_min_ms": 6.08723799998802,
    "latency_avg_ms": 23.08723799998802, "latency_p90_ms": 41.0, "latency_p999_ms": 420.0,
    "acquire_mean_ms": 0.0371234, "db_mean_ms": 5.59412, "app_mean_ms": 1.0261, "queue_mean_ms": 0.412,
    "pool_wait_mean_ms": 0.0331234, "connect_mean_ms": 0.0, "sql_mean_ms": 4.91, "python_mean_ms": 1.12,
    "gil_mean_ms": 0.57,
    "load_cores": 0.126, "server_cores": 0.4351234, "database_cores": 0.065, "warmup_s": 1.613,
    "pool_stats": {"total": {"workers": 2, "pool_size": 8, "requests_num": 3939, "requests_wait_ms": 124,
                             "connections_num": 8},
                   "workers": {"101": {"pool_size": 4, "requests_num": 2000}, "102": {"pool_size": 4,
                                                                                    "requests_num": 1939}},
                   "settings": {"pool": {"timeout": 10.0, "max_size": 4, "min_size": 4}}},
    "timing": {"acquire": {"mean_ms": 0.0371234, "p95_ms": 0.035, "max_ms": 6.023},
               "db": {"mean_ms": 5.59412, "p95_ms": 26.0, "max_ms": 180.941},
               "share": {"acquire": 0.005, "db": 0.841}},
    "cpu": {"load": {"mean_cores": 0.126, "peak_cores": 0.216}, "server": {"mean_cores": 0.4351234,
            "peak_cores": 0.72, "busiest_process": {"pid": 18433, "cores": 0.432}}},
}  # fmt: skip


def rich_sweep(**kwargs) -> Sweep:
    """Sizes 4 and 8 (8 twice), each trial with a histogram, a timeline, the time split and the CPU."""
    trials = [
        {"pool_size": 4, "rps": 801.4567, "requests": 1334, **RICH},
        {
            "pool_size": 8,
            "rps": 902.25,
            "requests": 1334,
            **RICH,
            "acquire_mean_ms": 0.02,
            "db_mean_ms": 7.5,
            "pool_wait_mean_ms": 0.02,
            "sql_mean_ms": 7.5,
        },
        {
            "pool_size": 8,
            "rps": 880.5,
            "requests": 1334,
            **RICH,
            "acquire_mean_ms": 0.04,
            "db_mean_ms": 6.5,
            "pool_wait_mean_ms": 0.04,
            "sql_mean_ms": 6.5,
        },
        {"pool_size": 2, "rps": 0, "status": Trial.Status.ERROR, "p50": None, "p95": None, "p99": None},
    ]
    fields = {"best_size": 8, "best_rps": 891.375, "recommended_size": 8, "recommendation": "Size 8 won.",
              "formula_cores": 2, "formula_spindles": 0, "formula_connections": 4, "formula_per_worker": 4,
              "formula_workers": 1, "formula_cores_source": "the database runs on this machine"}  # fmt: skip
    sweep = make_sweep(trials, **{**fields, **kwargs})
    # make_sweep writes its own db_stats; these are the sampler's, as a real trial stores them.
    sweep.trials.filter(status=Trial.Status.OK).update(db_stats=DB_STATS)
    return sweep


def values(pg, selector: str, attr: str = "value") -> list[float]:
    return [float(v) for v in pg.locator(selector).evaluate_all(f"els => els.map(e => e.dataset.{attr})")]


def test_sweep_page_gives_the_answer_then_sizes_then_charts_and_bars(page, live_server):  # noqa: F811
    line = "Bottleneck: the pool - waiting for a connection 75% of the time - raise the pool size"
    sweep = rich_sweep(bottleneck=line, bottleneck_resource="pool")
    sweep.size_summaries.filter(size=8).update(rps_ci_low=870.3, rps_ci_high=910.5)
    viewer()
    login(page, live_server, "viewer")
    page.goto(f"{live_server.url}/admin/poolbench/sweep/{sweep.pk}/change/")
    answer = page.locator("#pb-answer").inner_text()
    assert page.locator("#pb-bottleneck").inner_text() == line
    assert answer.startswith("Recommended pool size: 8. Size 8 won.")
    assert (
        "Formula starting point (HikariCP: cores x 2 + effective spindles): 2 x 2 + 0 = 4 connections"
        in answer
    )
    # The by-size table: the medians and the spread as stored.
    assert values(page, "#size_summaries-group .pb-rps", "rps") == [s.rps for s in sweep.size_summaries.all()]
    assert "880.5-902.2" in page.locator("#size_summaries-group").inner_text()  # min-max of size 8
    assert "870.3-910.5" in page.locator("#size_summaries-group").inner_text()  # the stored 95% interval
    ok = [t for t in sweep.trials.order_by("index") if t.status == Trial.Status.OK]
    assert values(page, 'svg.pb-chart[data-metric="rps"] circle.pb-point', "rps") == [t.rps for t in ok]
    assert page.locator('svg.pb-chart[data-metric="rps"] line.pb-spread').count() == 1  # size 8 twice
    spread = page.locator('svg.pb-chart[data-metric="rps"] g.pb-spread-bar[data-size="8"]')
    eight = sweep.size_summaries.get(size=8)
    assert (float(spread.get_attribute("data-min")), float(spread.get_attribute("data-max"))) == (
        eight.rps_min, eight.rps_max)  # fmt: skip
    # The time split: one stacked bar per size, each part the median over the size's trials.
    for part in ("queue_mean_ms", "pool_wait_mean_ms", "connect_mean_ms", "sql_mean_ms", "python_mean_ms",
                 "gil_mean_ms"):  # fmt: skip
        got = values(page, f'#chart-bars-time rect[data-part="{part}"]')
        assert got == [getattr(ok[0], part), median(getattr(t, part) for t in ok[1:])], part
    for part in ("load_cores", "server_cores", "database_cores"):
        assert values(page, f'#chart-bars-cpu rect[data-part="{part}"]') == [getattr(ok[0], part)] * 2, part
    # Stacked: the parts of a bar sit on top of each other, the whole bar as tall as their sum.
    bar = page.locator("#chart-bars-time g.pb-bar-group").first.locator("rect")
    boxes = [bar.nth(i).bounding_box() for i in range(bar.count())]
    assert boxes[0]["y"] == pytest.approx(boxes[1]["y"] + boxes[1]["height"], abs=1.5)
    page.screenshot(path=str(ARTIFACTS / "admin-sweep-answer.png"), full_page=True)


def test_trial_page_draws_the_stored_distribution_and_timeline(page, live_server):  # noqa: F811
    sweep = rich_sweep()
    trial = sweep.trials.get(index=1)
    trial.errors = [{"message": "HTTP 503: PoolTimeout: couldn't get a connection", "count": 3,
                     "names": ["/__poolbench__/probe"]}]  # fmt: skip
    trial.save()
    viewer()
    login(page, live_server, "viewer")
    page.goto(f"{live_server.url}/admin/poolbench/trial/{trial.pk}/change/")
    # The distribution: every stored request counted once, the CDF ending at 100%, the stored percentiles.
    total = sum(HISTOGRAM.values())
    assert int(page.locator("svg.pb-latency g.pb-hist").get_attribute("data-total")) == total
    assert sum(values(page, "svg.pb-latency g.pb-hist rect", "count")) == total
    assert float(page.locator("svg.pb-latency polyline.pb-cdf").get_attribute("data-last")) == 100.0
    markers = page.locator("svg.pb-latency g.pb-marker")
    assert {markers.nth(i).get_attribute("data-percentile"): float(markers.nth(i).get_attribute("data-ms"))
            for i in range(markers.count())} == {
        "p50": trial.latency_p50_ms, "p95": trial.latency_p95_ms, "p99": trial.latency_p99_ms}  # fmt: skip
    # The timeline: a point per stored second, the window where it was stored.
    seconds = TIMELINE["seconds"]
    for chart, field in (("requests", "requests"), ("latency", "p95_ms"), ("connections", "connections")):
        got = values(page, f'#timeline-{chart} g.pb-line[data-field="{field}"] circle')
        assert got == [s[field] for s in seconds], chart
    window = page.locator("#timeline-requests rect.pb-window")
    assert (float(window.get_attribute("data-from")), float(window.get_attribute("data-to"))) == (
        1.613,
        5.629,
    )
    assert page.locator(".errornote").count() == 0  # a read-only page has no form error to show
    # Numbers with units and sensible precision, never the raw float.
    text = page.locator("#content").inner_text()
    assert "23.087237" not in text and "6.087237" not in text
    headline = page.locator("#pb-headline").inner_text()
    assert "23.1 ms" in headline and "6.09 ms" in headline and "801.5 req/s" in headline
    pool = page.locator("#pb-pool-total").inner_text()
    assert re.search(r"requests wait\s+124 ms", pool) and re.search(r"requests num\s+3,939", pool)
    assert re.search(r"timeout\s+10 s", page.locator("#pb-pool-settings").inner_text())
    assert page.locator("#pb-pool-workers th").all_inner_texts()[1:] == ["101", "102"]
    assert re.search(r"mean connections\s+7.96", page.locator("#pb-db").inner_text())
    assert re.search(
        r"server\s+0.435 cores\s+0.72 cores\s+pid 18433: 0.432 cores", page.locator("#pb-cpu").inner_text()
    )
    assert re.search(
        r"in the database\s+5.59 ms\s+26 ms\s+180.9 ms\s+84%", page.locator("#pb-timing").inner_text()
    )
    errors = page.locator("#pb-errors tbody tr")
    assert (
        errors.count() == 1 and "PoolTimeout" in errors.inner_text() and errors.inner_text().startswith("3")
    )
    page.screenshot(path=str(ARTIFACTS / "admin-trial.png"), full_page=True)


def test_sweep_list_shows_a_running_sweep_and_filters_by_mode(page, live_server):  # noqa: F811
    running = make_sweep(
        [{"pool_size": 4, "rps": 700.125}, {"pool_size": 8, "rps": 750.5},
         {"pool_size": 16, "rps": 0, "status": Trial.Status.RUNNING}],
        status=Sweep.Status.RUNNING, minutes_ago=1,
    )  # fmt: skip
    queuepool = make_sweep(
        [{"pool_size": 4, "rps": 300.0, "mode": "queuepool"}], vendor="mysql", alias="mysql", minutes_ago=50
    )
    done = typical_sweep(minutes_ago=100)
    viewer()
    login(page, live_server, "viewer")
    page.goto(f"{live_server.url}/admin/poolbench/sweep/")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 3
    first = rows.first.inner_text()  # newest first: the running sweep, with its trials so far
    assert f"#{running.pk}" in first and "running" in first
    assert "2 trial(s) done, best so far 750.5 req/s" in first
    headers = page.locator("#result_list thead th").all_inner_texts()
    assert [h.strip().lower() for h in headers[1:]] == [
        "sweep", "target", "sizes", "status", "recommended", "best req/s (size)", "bottleneck", "trials"]  # fmt: skip
    page.screenshot(path=str(ARTIFACTS / "admin-sweep-list.png"), full_page=True)
    page.click('#changelist-filter a[href*="mode=queuepool"]')
    page.wait_for_url(re.compile(r"mode=queuepool"))
    assert page.locator("#result_list tbody tr").count() == 1
    assert f"#{queuepool.pk}" in page.locator("#result_list tbody tr").inner_text()
    page.goto(f"{live_server.url}/admin/poolbench/sweep/?vendor__exact=postgresql&status__exact=done")
    assert [r.split()[0] for r in page.locator("#result_list tbody tr").all_inner_texts()] == [f"#{done.pk}"]


def test_compare_page_puts_sizes_and_recommendations_side_by_side(page, live_server):  # noqa: F811
    a = rich_sweep(minutes_ago=90)
    b = make_sweep(
        [{"pool_size": s, "rps": r} for s, r in ((2, 300.5), (4, 650.75), (8, 640.0))], minutes_ago=20,
        best_size=4, best_rps=650.75, recommended_size=4, recommendation="Size 4.",
        bottleneck="Bottleneck: the pool - at pool 2 requests waited 40 ms - a larger pool",
    )  # fmt: skip
    viewer()
    login(page, live_server, "viewer")
    page.goto(f"{live_server.url}/admin/poolbench/sweep/compare/?ids={a.pk},{b.pk}")
    table = page.locator("#pb-compare-sizes")
    assert [int(s) for s in table.locator("tbody tr").evaluate_all("els => els.map(e => e.dataset.size)")] == [
        2, 4, 8]  # fmt: skip
    row8 = table.locator('tbody tr[data-size="8"] td.pb-rps')
    assert values(page, '#pb-compare-sizes tbody tr[data-size="8"] td.pb-rps', "rps") == [
        a.size_summaries.get(size=8).rps, b.size_summaries.get(size=8).rps]  # fmt: skip
    assert "★" in row8.first.inner_text()  # a recommends 8
    assert table.locator("tfoot").inner_text().split() == ["recommended", "8", "4", "(-4", "vs", f"#{a.pk})"]
    for sweep in (a, b):
        stored = [t.rps for t in sweep.trials.order_by("index") if t.status == Trial.Status.OK]
        got = values(page, f'svg.pb-chart[data-metric="rps"] circle.pb-point[data-sweep="{sweep.pk}"]', "rps")
        assert got == stored
        p99 = values(
            page, f'svg.pb-chart[data-metric="latency_p99_ms"] circle.pb-point[data-sweep="{sweep.pk}"]'
        )
        assert p99 == [
            t.latency_p99_ms for t in sweep.trials.order_by("index") if t.status == Trial.Status.OK
        ]
    # The answers and the bottleneck lines side by side, as stored on each sweep.
    for sweep in (a, b):
        answer = page.locator(f'#pb-compare-answers tbody tr[data-sweep="{sweep.pk}"]')
        assert answer.locator("td.pb-why").inner_text() == sweep.recommendation
        assert answer.locator("td.pb-bottleneck").inner_text() == (sweep.bottleneck or "-")
    page.screenshot(path=str(ARTIFACTS / "admin-compare-sizes.png"), full_page=True)


def test_report_has_the_answer_and_the_same_bars_offline(page, tmp_path, transactional_db):  # noqa: F811
    sweep = rich_sweep()
    report = tmp_path / "report.html"
    report.write_text(export.to_html(export.load_trials_of([sweep])), encoding="utf-8")
    requests: list[str] = []
    page.route(re.compile(r"^(?!file://).*"), lambda r: (requests.append(r.request.url), r.abort()))
    page.goto(report.as_uri())
    assert "2 x 2 + 0 = 4 connections" in page.locator(".pb-reco").inner_text()
    ok = [t for t in sweep.trials.order_by("index") if t.status == Trial.Status.OK]
    prefix = f"#sweep{sweep.pk}-bars"
    got = values(page, f'{prefix}-time rect[data-part="sql_mean_ms"]')
    assert got == [ok[0].sql_mean_ms, median(t.sql_mean_ms for t in ok[1:])]
    assert values(page, f'{prefix}-cpu rect[data-part="server_cores"]') == [ok[0].server_cores] * 2
    assert requests == []
    page.screenshot(path=str(ARTIFACTS / "report-bars.png"), full_page=True)


def test_a_grid_sweep_page_shows_the_heatmap(page, live_server):  # noqa: F811
    specs = [(1, 4, 400.25), (1, 8, 450.5), (2, 4, 610.75), (2, 8, 700.125), (2, 8, 690.0)]
    sweep = make_sweep([{"pool_size": s, "rps": r, "workers": w, **RICH} for w, s, r in specs])
    viewer()
    login(page, live_server, "viewer")
    page.goto(f"{live_server.url}/admin/poolbench/sweep/{sweep.pk}/change/")
    cells = page.locator("svg.poolbench-heatmap rect")
    assert cells.count() == 4  # 2 servers x 2 pool sizes
    # Each cell: the mean req/s of its trials (the two 2x32 pool-8 repeats averaged), as stored.
    assert sorted(values(page, "svg.poolbench-heatmap rect", "rps")) == sorted(
        [400.2, 450.5, 610.8, round((700.125 + 690.0) / 2, 1)])  # fmt: skip
    # The bars group by server too: one per (server, size), labelled with it.
    labels = page.locator("#chart-bars-time g.pb-bar-group text").all_text_contents()
    assert labels == ["pool 4 1x32", "pool 8 1x32", "pool 4 2x32", "pool 8 2x32"]
    # The charts against pool size: one series per server, so that 1x32 and 2x32 never share a spread.
    rps = 'svg.pb-chart[data-metric="rps"]'
    assert page.locator(f"{rps} polyline.pb-median").count() == 2
    spread = page.locator(f"{rps} g.pb-spread-bar")
    assert spread.count() == 1 and float(spread.get_attribute("data-min")) == 690.0
    page.locator("svg.poolbench-heatmap").screenshot(path=str(ARTIFACTS / "admin-heatmap.png"))
    page.screenshot(path=str(ARTIFACTS / "admin-sweep-grid.png"), full_page=True)
