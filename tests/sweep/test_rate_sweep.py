"""Open-model sweeps (--rate, --find-capacity) against real PostgreSQL (127.0.0.1:5432), real gunicorn
and Locust as a real child: Little's law decides which size holds the rate, latency is measured from the
intended send time (cross-checked with the server's own timing), the rate is split across Locust
processes, and --find-capacity finds each size's capacity under its bound.

The p99 targets here are looser than the issue's (p99<100ms): on the shared 2-core machine the
tests run on, a pool well under its bound had a p99 of 240-440 ms (see docs/rate-and-capacity.md);
pool 2 at twice its bound builds a queue of seconds whatever the machine."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from poolbench.models import SizeCapacity, Sweep, Trial

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def sweep(*args: str) -> tuple[str, Sweep]:
    out = io.StringIO()
    call_command("poolbench", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue(), Sweep.objects.get()


def test_little_s_law_decides_which_size_holds_200_req_s(no_stray_children):
    text, s = sweep(
        "--rate", "200", "--slo", "p99<1s,errors<1%", "--query-delay-ms", "20", "--sizes", "2,8",
        "--threads", "32", "--workers", "1", "--duration", "3", "--warmup", "1",
    )  # fmt: skip
    trials = list(s.trials.order_by("index"))
    at_200 = [t for t in trials if t.target_rate == 200]
    assert [t.pool_size for t in at_200] == [2, 8]
    two, eight = at_200
    # Pool 2 cannot serve more than 2 / 20 ms = 100 req/s: it answered no more, missed the target and
    # was not offered its rate (the arrivals queued in Locust).
    assert two.rps <= 100 * 1.05
    assert two.slo_passed is False and two.rate_offered is False
    assert two.dropped_requests > 0 and two.late_requests > 0
    assert any(n.startswith("could not offer its rate") and "the server fell behind" in n for n in two.notes)
    # Latency from the intended send time: the client saw far more than the server did (the wait for a
    # free connection is inside both; the wait in Locust's queue only in the client's).
    assert two.latency_avg_ms > 3 * two.total_mean_ms
    # Pool 8 (bound 400) held the rate: sent what was due, answered it, met the targets.
    assert eight.rate_offered is True and eight.slo_passed is True
    assert eight.achieved_rate == pytest.approx(200, rel=0.15)
    assert eight.rps == pytest.approx(eight.achieved_rate, rel=0.05)
    # Sent in the window vs answered in it: they differ by what was in flight at its edges, which
    # Little's law puts at rate x mean latency.
    in_flight = 200 * eight.latency_avg_ms / 1000
    assert abs(eight.arrival_stats["sent"] - eight.requests) <= 5 + 2 * in_flight
    assert eight.timing["requests"] == pytest.approx(eight.requests, rel=0.1)  # the server counted them too
    # Then the headroom: pool 8 at 200 x 1.2.
    assert [(t.pool_size, t.target_rate) for t in trials[2:]] == [(8, 240.0)]
    assert trials[2].slo_passed is True
    assert s.recommended_size == 8
    assert s.recommendation.startswith(
        "Size 8 is the smallest that met every target (p99<1s, errors<1%) at 240 req/s"
    )
    assert (
        "Little's law: pool 2, 1x32: 200 req/s is above what it can serve: 2 connection(s) / 20 ms per query = "
        "100 req/s at most"
        in two.notes[-1]
        or any("Little's law" in n for n in two.notes)
    )
    assert "Open-model trials (latency from each request's intended send time):" in text
    assert f"trial {two.index} (pool 2): target 200 req/s" in text and "RATE NOT OFFERED" in text
    assert s.options["rate"] == 200 and s.options["slo"] == ["p99<1s", "errors<1%"]


def test_the_rate_is_split_across_locust_processes(no_stray_children):
    _, s = sweep(
        "--rate", "120", "--arrivals", "constant", "--slo", "errors<1%", "--headroom", "1", "--sizes", "4",
        "--threads", "8", "--workers", "1", "--duration", "3", "--warmup", "1", "--locust-processes", "2",
    )  # fmt: skip
    (t,) = s.trials.all()
    assert t.status == Trial.Status.OK and t.arrivals == "constant"
    # Two workers at 60 req/s each: 120 in all, not 240.
    assert t.achieved_rate == pytest.approx(120, rel=0.1)
    assert t.rps == pytest.approx(120, rel=0.1)
    # Constant spacing: the window's scheduled arrivals are the rate times the window, to a few.
    assert t.arrival_stats["scheduled"] == pytest.approx(120 * t.duration_s, rel=0.1)
    assert t.rate_offered is True and s.recommended_size == 4, (t.notes, t.arrival_stats)


def test_find_capacity_stays_under_little_s_bound_and_near_it(no_stray_children):
    text, s = sweep(
        "--find-capacity", "--slo", "p99<200ms", "--sizes", "2,8", "--query-delay-ms", "20", "--threads", "32",
        "--workers", "1", "--duration", "2", "--warmup", "1",
    )  # fmt: skip
    caps = {c.size: c for c in SizeCapacity.objects.filter(sweep=s)}
    assert set(caps) == {2, 8}
    for size, bound in ((2, 100.0), (8, 400.0)):
        c = caps[size]
        assert c.bound_rps == bound and 1 <= c.trials <= 6
        assert c.capacity_rps is not None and c.capacity_rps <= bound * 1.05, c.steps
        # Each rate the search called met was a trial that met every target at that rate.
        for step in c.steps:
            if "rate" in step:
                trial = s.trials.get(index=step["trial"])
                assert trial.target_rate == step["rate"] and bool(trial.slo_passed) == step["passed"]
    assert caps[2].capacity_rps >= 0.6 * 100
    assert caps[8].capacity_rps >= 2 * caps[2].capacity_rps
    assert caps[8].best
    assert "Capacity at SLO (--find-capacity: the highest rate that met p99<200ms; + met, - missed):" in text
    assert s.recommended_size in (2, 8) and s.recommendation


def test_a_four_size_sweep_prints_the_usl_fit_of_its_stored_trials(no_stray_children):
    from poolbench.results import usl

    text, s = sweep(
        "--sizes", "1,2,4,8", "--query-delay-ms", "20", "--users", "16", "--threads", "16", "--workers", "1",
        "--duration", "2", "--warmup", "1",
    )  # fmt: skip
    trials = list(s.trials.all())
    assert all(t.status == Trial.Status.OK for t in trials)
    # The fit is of the connections the database saw, per size, and it is what was printed.
    points, sizes = usl.sweep_points(trials)
    assert sizes == [1, 2, 4, 8] and [n for n, _ in points] == [
        t.mean_connections for t in sorted(trials, key=lambda t: t.pool_size)
    ]
    f = usl.sweep_fit(trials)
    assert f is not None
    first = next(line for line in text.splitlines() if line.startswith("USL fit"))
    assert first.startswith("USL fit (throughput vs connections in use, 4 sizes): lambda ")
    assert f"sigma {f.sigma:.4f}, kappa {f.kappa:.6f}" in first and "R^2" in first
    assert ("N* = " in first) == (f.n_star is not None)
    # Little's law makes throughput grow with the pool here (20 ms per query): lambda is about one
    # connection's 50 req/s.
    assert 25 <= f.lam <= 55
