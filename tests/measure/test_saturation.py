"""Saturation of the machine itself: the host-CPU rule on stored figures, a real sweep whose host is
saturated, and the load generator's own event-loop lag (real PostgreSQL, gunicorn and Locust)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from poolbench.models import Sweep, Trial
from poolbench.results import saturation

LOCUSTFILES = Path(__file__).parents[1] / "locustfiles"

# As ProcessCPU.result() stores them: mean cores per role, the whole host's, its core count.
BUSY = {
    "load": {"mean_cores": 0.95},
    "server": {"mean_cores": 0.8},
    "database": {"mean_cores": 0.05},
    "host": {"mean_cores": 1.84, "peak_cores": 2.0, "cpu_count": 2},
}


def test_host_saturation_rule_on_stored_figures():
    assert saturation.host_saturation_reasons(BUSY) == [
        "the host's CPU was 92% busy over the window (1.84 of 2 cores; Locust 0.95, server 0.80, "
        "database 0.05; the rest is other processes), at or above 85%: the server, Locust and the database "
        "competed for the CPU, so the figures understate the server; stop other work on this machine, or "
        "run Locust or the database on another one"
    ]
    # The threshold is a share of all cores: 1.70 of 2 is exactly 85%, 1.69 is below it; on 8 cores
    # the same 1.84 cores is a quarter of the machine.
    at = {"host": {"mean_cores": 1.70, "cpu_count": 2}}
    assert saturation.host_share(at) == pytest.approx(0.85)
    assert len(saturation.host_saturation_reasons(at)) == 1
    assert saturation.host_saturation_reasons({"host": {"mean_cores": 1.69, "cpu_count": 2}}) == []
    assert saturation.host_saturation_reasons({**BUSY, "host": {**BUSY["host"], "cpu_count": 8}}) == []
    # Not sampled (no host figure, or no core count): no flag, rather than a guess.
    assert saturation.host_saturation_reasons({}) == []
    assert saturation.host_saturation_reasons({"host": {"mean_cores": 2.0}}) == []
    assert saturation.host_share({}) is None


def test_lag_cell():
    assert saturation.lag_cell({"mean_ms": 0.42, "max_ms": 61.3}) == "0.4/61"
    assert saturation.lag_cell({"mean_ms": 12.0, "max_ms": 9.5}) == "12/9.5"
    assert saturation.lag_cell({}) == "-" and saturation.lag_cell(None) == "-"


def sweep_command(*args: str) -> tuple[str, Sweep]:
    out = io.StringIO()
    call_command("poolbench", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue(), Sweep.objects.get()


def assert_lag_plausible(t: Trial) -> dict:
    """The lag probe sleeps 10 ms per iteration and records each overshoot, so its iterations, each
    10 ms plus its lag, tile the window: samples x (10 ms + mean lag) is the window's length."""
    lag = t.cpu["load_lag"]
    assert lag["interval_ms"] == 10 and lag["samples"] > 0, lag
    assert 0 <= lag["p50_ms"] <= lag["p99_ms"] <= lag["max_ms"], lag
    assert lag["mean_ms"] <= lag["max_ms"], lag
    tiled = lag["samples"] * (lag["interval_ms"] + lag["mean_ms"]) / 1000 / lag["processes"]
    assert tiled == pytest.approx(t.duration_s, rel=0.15), (tiled, t.duration_s, lag)
    assert (t.load_lag_ms, t.load_lag_p99_ms, t.load_lag_max_ms) == (
        lag["mean_ms"],
        lag["p99_ms"],
        lag["max_ms"],
    )
    return lag


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_blocked_event_loop_shows_as_load_lag(no_stray_children):
    """A user that busy-waits 60 ms twice a second blocks every greenlet of its Locust process, the
    lag probe's too: the stored lag's max is at least 60 ms, and it is printed in the trials table."""
    # Read, not imported: importing a locustfile imports Locust, whose gevent patches break this process.
    source = (LOCUSTFILES / "blocks_loop.py").read_text(encoding="utf-8")
    block_ms = int(re.search(r"^BLOCK_MS = (\d+)$", source, re.M).group(1))
    text, sweep = sweep_command(
        "--sizes", "4", "--workers", "1", "--threads", "8", "--users", "8", "--duration", "3",
        "--warmup", "1", "--locustfile", str(LOCUSTFILES / "blocks_loop.py"),
    )  # fmt: skip
    t = sweep.trials.get()
    assert t.status == Trial.Status.OK and t.requests > 0
    lag = assert_lag_plausible(t)
    # The probe sleeps interval_ms, then measures how late it woke: a block that starts during its sleep
    # delays it by block_ms less the part of the sleep already gone (both clocks perf_counter).
    assert lag["max_ms"] >= block_ms - lag["interval_ms"] - 1, lag
    assert lag["processes"] == 1
    assert re.search(rf"^1\s+pool 4\s.*\s{re.escape(saturation.lag_cell(lag))}\s", text, re.M), text
    assert "load lag ms" in text


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_saturated_host_is_flagged(no_stray_children):
    """Two Locust processes whose users burn 10 ms of CPU per request, beside the server, and one
    busy process per core outside the sweep (other work on the machine, bounded to 60 s, killed at the
    end) keep every core busy: the trial is flagged host-saturated, the figure stored and printed. (The
    Locust processes alone read 80% of the two cores on a quiet machine: not a saturated host.)"""
    processes = 2
    burn = "import time\nend = time.monotonic() + 60\nwhile time.monotonic() < end: pass"
    burners = [subprocess.Popen([sys.executable, "-c", burn]) for _ in range(os.cpu_count() or 2)]
    try:
        text, sweep = sweep_command(
            "--sizes", "4", "--workers", "1", "--threads", "8", "--users", "16", "--duration", "3",
            "--warmup", "1", "--locust-processes", str(processes), "--locustfile",
            str(LOCUSTFILES / "cpu_heavy.py"),
        )  # fmt: skip
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    t = sweep.trials.get()
    assert t.status == Trial.Status.OK and t.requests > 0
    host = t.cpu["host"]
    cores = host["cpu_count"]
    assert t.host_cores == host["mean_cores"] and host["mean_cores"] >= 0.85 * cores, t.cpu
    assert t.host_cpu_saturated, t.cpu
    # Cross-check: the whole host's CPU (psutil's system-wide counters) holds at least what the
    # parties used (per-process counters), less the sampling's jitter.
    parties = t.load_cores + t.server_cores + (t.database_cores or 0)
    assert host["mean_cores"] >= 0.9 * parties, t.cpu
    assert t.cpu["host_saturated"] == saturation.host_saturation_reasons(t.cpu)
    share = f"{host['mean_cores'] / cores:.0%}"
    assert re.search(rf"^1\s+pool 4\s.*\s{share} \(saturated\)\s", text, re.M), text
    assert "HOST CPU SATURATED in trial(s) 1; their figures understate the server:" in text
    assert f"  trial 1: the host's CPU was {share} busy over the window" in text
    # The lag of the Locust processes, merged by the master from the workers' reports.
    lag = assert_lag_plausible(t)
    assert lag["processes"] == processes, lag


def test_lag_reason_on_stored_figures():
    """Locust's lag counts against the load generator when it is a quarter of the mean latency or more."""
    output = {
        "load_lag": {"mean_ms": 12.0, "max_ms": 80.0},
        "total": {"num_requests": 100, "total_response_time": 4000},
    }
    assert saturation.lag_reasons(output) == [
        "Locust's event loop ran 12.0 ms late on average (max 80 ms), 30% of the mean response time (40.0 ms): "
        "that part of each latency is Locust waiting for its turn (short of CPU), not the server; give Locust "
        "a core of its own, fewer users per process or another machine"
    ]
    assert saturation.lag_reasons({**output, "load_lag": {"mean_ms": 9.9, "max_ms": 80.0}}) == []  # < 25%
    # Below 2 ms it is no reason, whatever the latency; no lag or no requests: nothing to judge.
    fast = {
        "load_lag": {"mean_ms": 1.5, "max_ms": 9.0},
        "total": {"num_requests": 100, "total_response_time": 200},
    }
    assert saturation.lag_reasons(fast) == []
    assert saturation.lag_reasons({"total": output["total"]}) == []
    assert saturation.lag_reasons({"load_lag": output["load_lag"], "total": {"num_requests": 0}}) == []
