"""Issue 13's checks of the bottleneck line, as real sweeps (real gunicorn, Locust, PostgreSQL; short
trials): a CPU-bound probe names the server's CPU, a connection held while the database idles names the
pool, a database-bound probe names the database. Each line is printed, stored on the sweep, and shown
by poolbench_report.

The test machine is shared: when other processes fill its cores during the CPU-bound sweep, the line must
also say that the host had no core free (checked against the stored CPU figures)."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from poolbench.models import Sweep
from poolbench.results import bottleneck

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SHORT = ["--duration", "3", "--warmup", "1"]


def sweep(*args: str) -> tuple[Sweep, str]:
    out = io.StringIO()
    call_command("poolbench", *SHORT, *args, stdout=out, stderr=io.StringIO())
    found = Sweep.objects.order_by("-pk").first()
    assert found is not None and found.status == Sweep.Status.DONE, out.getvalue()
    text = out.getvalue()
    lines = [line for line in text.splitlines() if line.startswith("Bottleneck: ")]
    assert lines == [found.bottleneck], text  # printed once, and what is stored
    report = io.StringIO()
    call_command("poolbench_report", str(found.pk), stdout=report)
    assert found.bottleneck in report.getvalue()
    print(found.bottleneck)
    return found, text


def others_filled_the_host(found: Sweep) -> bool:
    """Whether, at the best size, the host was full and much of it went to processes outside the sweep."""
    groups, summaries = bottleneck._groups(found.trials.all())
    best = bottleneck.figures(groups[max(range(len(groups)), key=lambda i: summaries[i].rps)])
    ours = (best.server_cores or 0) + (best.database_cores or 0) + (best.load_cores or 0)
    full = best.host_cores >= bottleneck.HOST_SATURATED * best.cpu_count
    return full and best.host_cores - ours >= bottleneck.OTHERS_CORES


def test_cpu_bound_probe_names_the_servers_cpu(no_stray_children):
    found, _ = sweep("--probe-cpu-ms", "5", "--sizes", "4,16")
    assert found.options["probe_cpu_ms"] == 5
    for t in found.trials.all():
        assert t.python_mean_ms >= 5.0  # each request ran its 5 ms of Python
    assert found.bottleneck_resource == "the server's CPU", found.bottleneck
    assert "add workers (--workers 2" in found.bottleneck
    # On a host that other processes filled, the line says so (adding workers needs free cores).
    busy = "went to processes outside this sweep, so measure again on a quiet machine" in found.bottleneck
    assert busy == others_filled_the_host(found), found.bottleneck


def test_connection_held_while_the_database_idles_names_the_pool(no_stray_children):
    found, _ = sweep("--query-delay-ms", "20", "--sizes", "2", "--threads", "32", "--users", "64")
    assert found.bottleneck_resource == "the pool", found.bottleneck
    assert found.bottleneck.startswith("Bottleneck: the pool - at pool 2 requests waited ")
    assert "one pool size was measured" in found.bottleneck
    t = found.trials.get()
    assert t.pool_wait_mean_ms > 10 * t.sql_mean_ms / 20  # most of the time waits for the 2 connections


def test_database_bound_probe_names_the_database(no_stray_children):
    found, _ = sweep(
        "--probe-db-ms", "5", "--sizes", "2,8", "--workers", "2", "--threads", "16", "--users", "64"
    )
    calibration = found.options["probe_db"]
    assert calibration["units"] > 0 and calibration["target_ms"] == 5
    assert found.bottleneck_resource == "the database", found.bottleneck
    best = max(found.trials.all(), key=lambda t: t.rps)
    assert best.database_cores >= 0.7  # the database, not the server, used the cores
    assert best.database_cores > best.server_cores
