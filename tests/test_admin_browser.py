"""The admin and the HTML report in a real browser: Debian's headless Chromium driven by Playwright.

The live server is pytest-django's (the test database on the real PostgreSQL). Screenshots go to
test-artifacts/ (git-ignored) so a person can look at what the browser saw.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.db import connections

from poolbench.models import Sweep, Trial
from tests.conftest import ROOT, stray_processes
from tests.sample_sweeps import make_sweep, typical_sweep

pytestmark = [pytest.mark.postgres]

# Traffic stays on 127.0.0.1 ("localhost" may resolve to ::1 first).
os.environ.setdefault("DJANGO_LIVE_TEST_SERVER_ADDRESS", "127.0.0.1")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ARTIFACTS = ROOT / "test-artifacts"
PASSWORD = "correct horse battery"


@pytest.fixture
def page(tmp_path, monkeypatch):
    """A fresh Chromium profile per test; nothing downloaded (Playwright uses the system's chromium)."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), (
        "Debian's chromium is missing: run scripts/setup.sh (apt-get install chromium)"
    )
    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test body are still
    # plain synchronous calls, which Django would otherwise refuse next to a running loop.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1500, "height": 1000},
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()
            # The test body's ORM calls ran while Playwright's loop was entered, in a context of their own,
            # so they opened a connection of their own: close it, or the test database cannot be dropped.
            connections.close_all()


def viewer(username: str = "viewer") -> User:
    """Staff, with nothing but the view permissions of poolbench's models."""
    user = User.objects.create_user(username, password=PASSWORD, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_sweep", "view_trial"]))
    return user


def login(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")


def rps_points(page, scope: str = "") -> list[tuple[int, float]]:
    circles = page.locator(f'{scope} svg.pb-chart[data-metric="rps"] circle.pb-point')
    return [(int(c.get_attribute("data-trial")), float(c.get_attribute("data-rps"))) for c in circles.all()]


@pytest.mark.slow
def test_after_a_real_sweep_the_admin_and_the_report_show_its_trials(
    page, live_server, tmp_path, no_stray_children
):
    """End to end: a real short sweep (gunicorn, Locust, PostgreSQL) writes --report and --json; the admin."""
    report, data = tmp_path / "sweep.html", tmp_path / "sweep.json"
    out = io.StringIO()
    call_command(
        "poolbench", "--sizes", "2,6", "--duration", "2", "--warmup", "1", "--users", "8", "--workers", "1",
        "--threads", "8", "--report", str(report), "--json", str(data), stdout=out, stderr=io.StringIO(),
    )  # fmt: skip
    assert not stray_processes(tag=no_stray_children), "the sweep left children running"
    sweep = Sweep.objects.get()
    trials = list(sweep.trials.order_by("index"))
    assert [t.pool_size for t in trials] == [2, 6] and all(
        t.status == Trial.Status.OK and t.rps > 0 for t in trials
    )
    assert f"Wrote the HTML report of sweep #{sweep.pk} to {report}" in out.getvalue()
    # The figures a user sorts by are columns, set from the same measurements as the detail in JSON.
    for t in trials:
        assert t.peak_connections == t.db_stats["peak_connections"] and t.mean_connections is not None
        assert t.total_mean_ms == t.timing["total"]["mean_ms"] and t.db_p95_ms == t.timing["db"]["p95_ms"]
        assert t.server_cores == t.cpu["server"]["mean_cores"] and t.load_cores is not None
        assert t.server_start_s == t.overhead["server_start_s"] and t.warmup_s == t.overhead["warmup_s"]
    assert [(s.size, s.trials) for s in sweep.size_summaries.all()] == [(2, 1), (6, 1)]
    assert [s.size for s in sweep.size_summaries.filter(recommended=True)] == [sweep.recommended_size]
    assert sweep.formula is not None and sweep.gate_passed is None and sweep.gate_breaches == []
    assert sorted(sweep.options) == sorted(
        ["modes", "query_delay_ms", "probe_cpu_ms", "probe_db_ms", "repeat", "pool_timeout", "tolerance", "login_user",
         "trial_server_changes", "allow_over_max", "spindles", "db_cores", "auto"]
    )  # fmt: skip
    records = json.loads(data.read_text())
    assert [(r["pool_size"], r["rps"], r["latency_p99_ms"]) for r in records] == [
        (t.pool_size, t.rps, t.latency_p99_ms) for t in trials
    ]

    viewer()
    login(page, live_server, "viewer")
    page.goto(f"{live_server.url}/admin/poolbench/sweep/")
    row = page.locator("#result_list tbody tr").first
    assert f"{sweep.best_rps:,.1f} (size {sweep.best_size})" in row.inner_text()
    page.click(f'#result_list a[href$="/sweep/{sweep.pk}/change/"]')
    page.wait_for_selector('svg.pb-chart[data-metric="rps"]')
    # One point per trial, at the stored requests/s.
    assert rps_points(page) == [(t.index, t.rps) for t in trials]
    assert page.locator("svg.pb-chart").count() == 4
    # The trials inline, one row per trial with its req/s.
    inline = page.locator("#trials-group tbody tr.form-row")
    assert inline.count() == 2
    # The per-size summary above it, one row per size with its median req/s.
    assert [float(v) for v in page.locator("#size_summaries-group .pb-rps").evaluate_all(
        "els => els.map(e => e.dataset.rps)")] == [s.rps for s in sweep.size_summaries.all()]  # fmt: skip
    assert [float(v) for v in page.locator("#trials-group .pb-rps").evaluate_all(
        "els => els.map(e => e.dataset.rps)")] == [t.rps for t in trials]  # fmt: skip
    page.screenshot(path=str(ARTIFACTS / "admin-sweep-real.png"), full_page=True)

    # A real trial's page: its per-second timeline, recorded while it ran, with the window where stored.
    t = trials[-1]
    page.click(f'#trials-group a[href$="/trial/{t.pk}/change/"]')
    page.wait_for_selector("#timeline-requests")
    circles = page.locator('#timeline-requests g.pb-line[data-field="requests"] circle')
    got = circles.evaluate_all("els => els.map(e => [Number(e.dataset.t), Number(e.dataset.value)])")
    assert got == [[r["t"], r["requests"]] for r in t.timeline["seconds"]] and len(got) >= 3
    window = page.locator("#timeline-requests rect.pb-window")
    assert float(window.get_attribute("data-from")) == t.timeline["measure_start_s"]
    markers = page.locator("svg.pb-latency g.pb-marker[data-percentile=p99]")
    assert float(markers.get_attribute("data-ms")) == t.latency_p99_ms
    assert int(page.locator("svg.pb-latency g.pb-hist").get_attribute("data-total")) == t.requests
    page.screenshot(path=str(ARTIFACTS / "admin-trial-real.png"), full_page=True)

    # The report written by the sweep renders offline: every request but the file itself is refused.
    requests: list[str] = []
    page.route(
        re.compile(r"^(?!file://).*"), lambda route: (requests.append(route.request.url), route.abort())
    )
    page.goto(report.as_uri())
    assert rps_points(page) == [(t.index, t.rps) for t in trials]
    assert page.locator("table.pb-table tbody tr").count() == 2
    assert "Recommended pool size" in page.locator(".pb-reco").inner_text() or sweep.recommended_size is None
    assert requests == []
    page.screenshot(path=str(ARTIFACTS / "report-real.png"), full_page=True)


def test_staff_compares_two_sweeps_in_the_browser(page, live_server):
    a = typical_sweep(minutes_ago=120)
    b = make_sweep(
        [{"pool_size": s, "rps": r} for s, r in ((5, 430.5), (10, 880.25), (16, 905.0), (200, 610.75))],
        vendor="mysql", alias="mysql", target="mysql://root@127.0.0.1:3306/test", minutes_ago=30,
        best_size=16, best_rps=905.0, recommended_size=10, recommendation="Size 10 is within 5%.",
    )  # fmt: skip
    viewer()
    login(page, live_server, "viewer")
    page.goto(f"{live_server.url}/admin/poolbench/sweep/")
    assert page.locator("#result_list tbody tr").count() == 2
    page.screenshot(path=str(ARTIFACTS / "admin-sweeps.png"), full_page=True)

    page.goto(f"{live_server.url}/admin/poolbench/sweep/{a.pk}/change/")
    # Size 10 ran three times: three points at one size, and the spread drawn between them.
    points = page.locator('svg.pb-chart[data-metric="rps"] circle.pb-point[data-size="10"]')
    assert sorted(float(v) for v in points.evaluate_all("els => els.map(e => e.dataset.rps)")) == sorted(
        t.rps for t in a.trials.filter(pool_size=10)
    )
    assert page.locator('svg.pb-chart[data-metric="rps"] line.pb-spread').count() == 1
    page.screenshot(path=str(ARTIFACTS / "admin-sweep.png"), full_page=True)

    page.goto(f"{live_server.url}/admin/poolbench/sweep/")
    page.check(f'input[name="_selected_action"][value="{a.pk}"]')
    page.check(f'input[name="_selected_action"][value="{b.pk}"]')
    page.select_option('select[name="action"]', "compare_selected")
    page.click('button[name="index"]')
    page.wait_for_selector("#pb-compared")
    assert page.url.endswith(f"/admin/poolbench/sweep/compare/?ids={a.pk},{b.pk}")
    chart = 'svg.pb-chart[data-metric="rps"]'
    for sweep in (a, b):
        stored = [t.rps for t in sweep.trials.order_by("index") if t.status == Trial.Status.OK]
        values = page.locator(f'{chart} circle.pb-point[data-sweep="{sweep.pk}"]').evaluate_all(
            "els => els.map(e => e.dataset.rps)"
        )
        assert [float(v) for v in values] == stored
    page.screenshot(path=str(ARTIFACTS / "admin-compare.png"), full_page=True)


def test_a_user_who_is_not_staff_cannot_get_in(page, live_server):
    sweep = typical_sweep()
    User.objects.create_user("visitor", password=PASSWORD, is_staff=False)
    login(page, live_server, "visitor")
    assert "Please enter the correct username and password for a staff account" in page.content()
    page.goto(f"{live_server.url}/admin/poolbench/sweep/{sweep.pk}/change/")
    assert "/admin/login/" in page.url and page.locator("svg.pb-chart").count() == 0
    page.screenshot(path=str(ARTIFACTS / "admin-not-staff.png"), full_page=True)
