"""The arrival scheduler's pure parts: the spacing of the arrivals, and what a trial records."""

from __future__ import annotations

import random
import statistics
from itertools import islice

import pytest

from poolbench.loadgen import arrivals
from poolbench.results.rate import little_bound, offered_problem, rate_tolerance


def test_poisson_gaps_have_the_rate_s_mean_and_spread_and_constant_gaps_do_not_vary():
    gaps = list(islice(arrivals.gaps(200.0, "poisson", random.Random(1)), 20000))
    assert statistics.mean(gaps) == pytest.approx(1 / 200, rel=0.03)
    assert statistics.stdev(gaps) == pytest.approx(1 / 200, rel=0.05)  # exponential: sd = mean
    assert set(islice(arrivals.gaps(200.0, "constant", random.Random(1)), 100)) == {0.005}


def test_summary_counts_what_was_sent_in_the_window():
    raw = {"scheduled": 1000, "sent": 990, "late": 3, "late_ms_total": 45.0, "late_ms_max": 20.0,
           "queued": 10, "lag_ms_total": 500.0, "lag_ms_max": 4.0}  # fmt: skip
    out = arrivals.summary(raw, 200.0, 5.0)
    assert out["achieved_rate"] == 198.0 and out["dropped"] == 10 and out["late"] == 3
    assert out["late_ms_mean"] == 15.0 and out["lag_ms_mean"] == 0.5


def test_a_trial_that_sent_what_was_due_was_offered_its_rate():
    ok = {
        "target_rate": 200,
        "scheduled": 1000,
        "sent": 1000,
        "achieved_rate": 196.0,
        "dropped": 0,
        "late": 2,
    }
    assert offered_problem(ok, 5.0) == ""
    behind = {**ok, "sent": 400, "achieved_rate": 80.0, "dropped": 600, "late": 300}
    assert offered_problem(behind, 5.0) == (
        "600 arrival(s) due in the window were never sent; 300 of 400 requests were sent more than 10 ms late "
        "(no Locust user free); 80 req/s sent of 200 asked"
    )
    assert offered_problem({**ok, "lag_ms_mean": 25.0}, 5.0) == ""  # a note, not a rate missed
    lagging = {**ok, "lag_ms_mean": 75.0}
    assert "the arrival scheduler woke 75 ms late on average" in offered_problem(lagging, 5.0)


def test_rate_tolerance_and_little_s_bound():
    assert rate_tolerance(2000, 10) == 0.05  # 20,000 arrivals: 3 sigma is 2.1%, the floor is 5%
    assert rate_tolerance(200, 10) == pytest.approx(3 / 2000**0.5)  # 6.7%
    assert rate_tolerance(20, 5) == pytest.approx(3 / 10)
    assert little_bound(2, 20) == 100.0 and little_bound(8, 20) == 400.0 and little_bound(8, 0) is None


@pytest.fixture
def scheduler():
    """The scheduler as Locust runs it (gevent greenlets), in this process; stopped afterwards."""
    yield arrivals
    arrivals.stop()
    arrivals.configure(0)
    arrivals._state["queue"] = None
    arrivals.reset()


def test_the_scheduler_makes_arrivals_due_on_time_and_a_user_takes_them(scheduler):
    import time

    import gevent

    scheduler.configure(100.0, "constant")
    scheduler.start()
    t0 = time.perf_counter()
    gevent.sleep(0.5)
    raw = scheduler.counts()
    assert raw["scheduled"] == pytest.approx(50, abs=5)  # 100/s for half a second
    # Nobody took them: all but the last few have waited more than 10 ms for a user.
    assert raw["queued"] == pytest.approx(raw["scheduled"] - 1, abs=3)
    due = [scheduler.take() for _ in range(3)]
    assert due == sorted(due) and due[1] - due[0] == pytest.approx(0.01) and due[0] >= t0
    after = scheduler.counts()
    assert after["sent"] == 3 and after["late"] == 3  # each had waited for a user, well over 10 ms
    scheduler.reset()
    assert scheduler.counts()["sent"] == 0


def test_a_closed_loop_takes_nothing(scheduler):
    scheduler.configure(0)
    assert not scheduler.enabled() and scheduler.take() is None
