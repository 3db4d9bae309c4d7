"""Trial.timeline, recorded while real trials run (gunicorn, Locust as a child, PostgreSQL): checked against
figures poolbench measures another way, Locust's window statistics and the database sampler's peak.

One Locust process (the plugin counts its own requests) and two (the workers send theirs to the master with
each report): the timeline must add up the same way in both.
"""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from poolbench.models import Sweep, Trial
from poolbench.results import pages, trialcharts

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def check_timeline(t: Trial) -> None:
    tl = t.timeline
    rows = tl["seconds"]
    assert [r["t"] for r in rows] == list(range(len(rows)))  # one row per second, none missing
    start, end = tl["measure_start_s"], tl["measure_end_s"]
    assert 0 < start < end and end - start == pytest.approx(t.duration_s, abs=0.05)
    assert 0 <= tl["test_start_s"] < 1 and start - tl["test_start_s"] == pytest.approx(t.warmup_s, abs=0.01)
    # The window's requests (Locust's own statistics) lie between the seconds wholly inside the window
    # and the seconds that touch it: the per-second counts are the same requests, counted independently.
    inside = sum(r["requests"] for r in rows if r["t"] >= start and r["t"] + 1 <= end)
    touching = sum(r["requests"] for r in rows if r["t"] + 1 > start and r["t"] < end)
    assert inside <= t.requests <= touching, (inside, t.requests, touching)
    assert sum(r["failures"] for r in rows) >= t.failures
    # Per-second latency within the window's extremes (Locust rounds both the same way).
    for r in rows:
        if r["requests"] and start <= r["t"] and r["t"] + 1 <= end:
            assert t.latency_min_ms - 1 <= r["mean_ms"] <= t.latency_max_ms
            assert r["p95_ms"] <= t.latency_max_ms
    # Connections: the database sampler's own samples, so never above its peak, and at it once warm.
    conns = [r["connections"] for r in rows if r["connections"] is not None]
    assert conns and max(conns) <= t.peak_connections
    inside_peak = max(r["connections"] or 0 for r in rows if r["t"] >= start and r["t"] + 1 <= end)
    touching_peak = max(r["connections"] or 0 for r in rows if r["t"] + 1 > start and r["t"] < end)
    assert inside_peak <= t.db_stats.get("window_peak_connections", t.peak_connections) <= touching_peak
    assert rows[0]["partial"] and rows[-1]["partial"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("processes", [1, 2])
def test_a_real_trial_records_its_timeline(processes, no_stray_children):
    call_command(
        "poolbench", "--sizes", "3", "--duration", "3", "--warmup", "1.5", "--users", "6", "--workers", "1",
        "--threads", "6", "--locust-processes", str(processes), "--repeat", "1", stdout=io.StringIO(), stderr=io.StringIO(),
    )  # fmt: skip
    t = Sweep.objects.get().trials.get()
    assert t.status == Trial.Status.OK and t.requests > 0
    check_timeline(t)
    # What the trial page draws is what was stored: a point per second, the window at the stored bounds.
    svg = str(trialcharts.timeline_charts(t)[0])
    assert svg.count("<circle") == len(t.timeline["seconds"])
    assert f'data-from="{t.timeline["measure_start_s"]!r}"' in svg
    assert pages.trial_context(t)["headline"][0] == ("throughput", pages.number(t.rps, "req/s"))
