"""Open-model load inside Locust (``--rate``): a scheduler greenlet draws the intended send time of
every request (Poisson or evenly spaced) and hands it to the provisioned users through a gevent queue.

Runs inside the Locust child only (a local runner or each worker); never imported by the Django process.

A user that takes an arrival sends it at once; its response time is recorded from the *intended* send
time, not from when it was sent (Locust's own clock would hide the wait: coordinated omission). When
every user is busy, the arrival waits in the queue and is sent late (counted in ``late`` when it waited
more than LATE_MS, its wait in its latency). The scheduler's own wake-up delay (a busy machine, a
saturated Locust) is counted apart, as ``lag``: it is in the latency too, but it is the generator's. Nothing is dropped while the window lasts: the arrivals still queued when the window ends
were never sent and are counted in ``dropped`` (their latency is unknown, so the trial is flagged).

With several Locust processes the master divides the rate by the number of workers (message
``poolbench_rate``): each worker schedules its share, and its counters reach the master in its reports.
"""

from __future__ import annotations

import random
import time
from typing import Any

import gevent
from gevent.queue import Queue

# An arrival sent this much after its intended time counts as late (gevent's timer jitter is ~1 ms).
LATE_MS = 10.0
ARRIVALS = ("poisson", "constant")

_state: dict[str, Any] = {"rate": 0.0, "arrivals": "poisson", "queue": None, "greenlet": None}
_counts = {
    "scheduled": 0, "sent": 0, "late": 0, "late_ms_total": 0.0, "late_ms_max": 0.0,
    "lag_ms_total": 0.0, "lag_ms_max": 0.0,
}  # fmt: skip
_SUMMED = ("scheduled", "sent", "late", "late_ms_total", "lag_ms_total")


def configure(rate: float, arrivals: str = "poisson") -> None:
    """Set this process's rate (requests/s; 0 = closed loop) and how arrivals are spaced."""
    if arrivals not in ARRIVALS:
        raise ValueError(f"arrivals must be one of {', '.join(ARRIVALS)}, not {arrivals!r}")
    _state["rate"] = float(rate or 0.0)
    _state["arrivals"] = arrivals


def enabled() -> bool:
    return _state["rate"] > 0


def gaps(rate: float, arrivals: str, rng: random.Random) -> Any:
    """Seconds between consecutive intended send times: exponential (Poisson process) or constant."""
    while True:
        yield rng.expovariate(rate) if arrivals == "poisson" else 1.0 / rate


def start() -> None:
    """Start the scheduler (once): from now on an arrival is due every gap, on an absolute timeline so
    that a late wake-up does not shift the ones after it."""
    if not enabled() or _state["greenlet"] is not None:
        return
    _state["queue"] = Queue()
    _state["greenlet"] = gevent.spawn(_schedule, _state["rate"], _state["arrivals"], _state["queue"])


def _schedule(rate: float, arrivals: str, queue: Queue) -> None:
    due = time.perf_counter()
    for gap in gaps(rate, arrivals, random.Random()):
        due += gap
        wait = due - time.perf_counter()
        if wait > 0:
            gevent.sleep(wait)
        lag_ms = max(0.0, (time.perf_counter() - due) * 1000.0)
        _counts["scheduled"] += 1
        _counts["lag_ms_total"] += lag_ms
        _counts["lag_ms_max"] = max(_counts["lag_ms_max"], lag_ms)
        queue.put(due)


def stop() -> None:
    if _state["greenlet"] is not None:
        _state["greenlet"].kill(block=False)
        _state["greenlet"] = None


def take() -> float | None:
    """For a user: block until the next arrival is due; its intended send time (perf_counter), or None
    in a closed loop (send now)."""
    if not enabled():
        return None
    if _state["queue"] is None:  # a user that started before the test_start listener ran
        start()
    queue = _state["queue"]
    waited_for_a_user = queue.qsize() > 0  # an arrival was due before this user was free
    due = queue.get()
    _counts["sent"] += 1
    late_ms = (time.perf_counter() - due) * 1000.0
    if waited_for_a_user and late_ms > LATE_MS:
        _counts["late"] += 1
        _counts["late_ms_total"] += late_ms
        _counts["late_ms_max"] = max(_counts["late_ms_max"], late_ms)
    return due


def from_intended(response: Any, due: float | None) -> None:
    """Make the request's recorded response time run from its intended send time (``due``)."""
    if due is not None:
        response.request_meta["response_time"] = (time.perf_counter() - due) * 1000.0


def reset() -> None:
    """The measured window begins: what was counted before is warm-up. From now on ``scheduled`` counts
    the arrivals due in the window, ``sent`` the requests sent in it (a few due just before it, if
    they waited for a user), and what is still queued when it ends was never sent."""
    _counts.update(
        scheduled=0, sent=0, late=0, late_ms_total=0.0, late_ms_max=0.0, lag_ms_total=0.0, lag_ms_max=0.0
    )


def counts() -> dict[str, Any]:
    """This process's counters; ``queued``: arrivals that have waited more than LATE_MS for a user (at
    the window's end: the dropped ones). Those due just now are on their way to a user that is being
    woken, not waiting for one."""
    out = dict(_counts)
    queue = _state["queue"]
    now = time.perf_counter()
    out["queued"] = (
        sum(1 for due in queue.queue if (now - due) * 1000.0 > LATE_MS) if queue is not None else 0
    )
    return out


def take_counts() -> dict[str, Any]:
    """The counters since the last call (a worker's report to the master is a delta), then zero."""
    out = counts()
    for key in _SUMMED:
        _counts[key] = 0
    return out


def add_counts(total: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    """The master's sum of its workers' deltas; ``queued`` is each worker's latest, so it is kept per
    worker (``client``) and summed at the end."""
    for key in _SUMMED:
        total[key] = total.get(key, 0) + delta.get(key, 0)
    for key in ("late_ms_max", "lag_ms_max"):
        total[key] = max(total.get(key, 0.0), delta.get(key, 0.0))
    return total


def summary(raw: dict[str, Any], rate: float, seconds: float) -> dict[str, Any]:
    """What the trial records: the target, what was sent per second, late and never-sent arrivals."""
    sent = max(0, int(raw.get("sent", 0)))
    late = max(0, int(raw.get("late", 0)))
    scheduled = max(0, int(raw.get("scheduled", 0)))
    return {
        "target_rate": rate,
        "arrivals": _state["arrivals"],
        "scheduled": scheduled,
        "sent": sent,
        "achieved_rate": round(sent / seconds, 2) if seconds > 0 else 0.0,
        "late": late,
        "late_ms_mean": round(raw.get("late_ms_total", 0.0) / late, 1) if late else 0.0,
        "late_ms_max": round(raw.get("late_ms_max", 0.0), 1),
        "dropped": max(0, int(raw.get("queued", 0))),
        # The scheduler's own wake-up delay: the load generator's, not the server's.
        "lag_ms_mean": round(raw.get("lag_ms_total", 0.0) / scheduled, 2) if scheduled else 0.0,
        "lag_ms_max": round(raw.get("lag_ms_max", 0.0), 1),
    }
