"""The split of a request's time inside the trial server (server/timing.py), checked against sources
outside poolbench's timers: psycopg_pool's own counters, Little's law, the CPU a probe is told to burn.
Real gunicorn, real Locust, real PostgreSQL and MariaDB; short trials."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from poolbench.models import Sweep
from poolbench.wire import SPLIT_PARTS

pytestmark = [pytest.mark.slow]

SHORT = ["--duration", "3", "--warmup", "1"]


def sweep(*args: str) -> tuple[Sweep, str]:
    out = io.StringIO()
    call_command("poolbench", *SHORT, *args, stdout=out, stderr=io.StringIO())
    found = Sweep.objects.order_by("-pk").first()
    assert found is not None and found.status == Sweep.Status.DONE, out.getvalue()
    return found, out.getvalue()


def pool_counter_mean(window: dict, corrected: bool) -> float:
    """psycopg_pool's own mean wait per request over the window. It adds int(ms) per wait, so each queued
    request is under-counted by half a millisecond on average: ``corrected`` adds that back."""
    waited = window["requests_wait_ms"] + (0.5 * window.get("requests_queued", 0) if corrected else 0.0)
    return waited / window["requests_num"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_pool_wait_agrees_with_psycopg_pool_counters(no_stray_children):
    # Pool 2 for 16 threads queues every request (waits of tens of ms); pool 8 waits less often and shorter.
    found, text = sweep(
        "--sizes", "2,8", "--workers", "1", "--threads", "16", "--users", "32", "--query-delay-ms", "5"
    )
    trials = list(found.trials.order_by("index"))
    assert [t.pool_size for t in trials] == [2, 8]
    for t in trials:
        window = t.pool_stats["window"]
        # Over the measured window only: the warm-up's requests are not in the pool's window counters.
        assert window["requests_num"] <= t.pool_stats["total"]["requests_num"]
        assert t.timing["acquires"] == pytest.approx(window["requests_num"], rel=0.03)
        ours = t.timing["pool_wait_per_checkout_ms"]
        theirs = pool_counter_mean(window, corrected=True)
        print(f"pool {t.pool_size}: poolbench {ours:.3f} ms, psycopg_pool {theirs:.3f} ms per request")
        assert ours == pytest.approx(theirs, rel=0.10, abs=0.02)
        assert t.pool_wait_mean_ms == pytest.approx(
            ours * t.timing["acquires"] / t.timing["requests"], rel=1e-3
        )
    small = trials[0]
    # Long waits: the pool's raw counter, without the correction, agrees within 10% as well.
    assert small.pool_wait_mean_ms > 5
    assert small.timing["pool_wait_per_checkout_ms"] == pytest.approx(
        pool_counter_mean(small.pool_stats["window"], corrected=False), rel=0.10
    )
    assert trials[1].pool_wait_mean_ms < small.pool_wait_mean_ms / 2
    # The parts add up to the time in the server, and the table shows them.
    for t in trials:
        parts = sum(getattr(t, f"{p}_mean_ms") for p in SPLIT_PARTS if p != "queue")
        assert parts == pytest.approx(t.total_mean_ms, rel=0.02)
        assert 0 < t.split_coverage <= 1.05
    assert "pool wait" in text and "of client mean" in text


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_python_part_is_the_probe_cpu_and_queue_fills_when_threads_are_few(no_stray_children):
    # 2 threads for 8 users: six requests wait in gunicorn's queue; each burns 4 ms of CPU in Python.
    found, _ = sweep(
        "--sizes", "4", "--workers", "1", "--threads", "2", "--users", "8", "--probe-cpu-ms", "4"
    )
    t = found.trials.get()
    assert t.timing["queue_timed"] is True
    assert 4.0 <= t.python_mean_ms < 4.0 + 2.0, t.python_mean_ms
    # Little's law on the server's queue: about users - threads requests wait there, each for queue ms.
    in_queue = t.rps * t.queue_mean_ms / 1000.0
    assert 3.0 <= in_queue <= 8.0, (t.rps, t.queue_mean_ms)
    assert t.queue_mean_ms > t.total_mean_ms


@pytest.mark.mysql
@pytest.mark.django_db(transaction=True, databases=["default", "mysql"])
def test_queuepool_wait_matches_littles_law(no_stray_children):
    # QueuePool 1 + 0 overflow, 8 threads, 16 users, 20 ms per request in the database: the connection is
    # the only server, so about 7 of the 8 threads wait in the pool's queue at any time (Little's law:
    # waiting = throughput x wait). QueuePool keeps no wait counter of its own; this is the cross-check.
    found, _ = sweep(
        "--database", "mysql", "--mode", "queuepool", "--sizes", "1", "--max-overflow", "0",
        "--workers", "1", "--threads", "8", "--users", "16", "--query-delay-ms", "20",
    )  # fmt: skip
    t = found.trials.get()
    waiting = t.rps * t.pool_wait_mean_ms / 1000.0
    print(f"queuepool 1: {t.rps:.1f} req/s, pool wait {t.pool_wait_mean_ms:.1f} ms -> {waiting:.2f} waiting")
    assert 5.5 <= waiting <= 7.5
    assert t.pool_stats["window"]["checkouts"] == pytest.approx(t.timing["acquires"], rel=0.03)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_connect_part_is_the_physical_connections_opened(no_stray_children):
    # Mode none opens a connection per request, in the request's thread: the database's own count of
    # new sessions, poolbench's count of opens and the requests agree, and the time shows in `connect`.
    # The native pool opens its connections in background threads: nothing of it is in `connect`.
    found, _ = sweep(
        "--mode", "none,pool", "--sizes", "4", "--workers", "1", "--threads", "4", "--users", "4"
    )
    by_mode = {t.mode: t for t in found.trials.all()}
    none, pool = by_mode["none"], by_mode["pool"]
    assert none.timing["opens"] == pytest.approx(none.timing["requests"], rel=0.02)
    assert none.db_stats["new_connections"] >= none.timing["opens"]
    assert none.connect_mean_ms > 0.3  # a PostgreSQL connection costs a fork and a handshake
    assert pool.timing["opens"] == 0 and pool.connect_mean_ms == 0
    assert none.connect_mean_ms > 5 * (pool.pool_wait_mean_ms + 0.01)
