"""Issue 7: server concurrency grid, Locust processes and master/worker load, their command errors."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from django.core.management import CommandError, call_command

from poolbench.models import Sweep, Trial
from poolbench.results.heatmap import grid_svg
from poolbench.results.tables import build_grid
from poolbench.sweep.load import PLUGIN
from tests.conftest import ROOT, descendants

PHASES = Path(__file__).parents[1] / "locustfiles" / "phases.py"
SHORT = ["--duration", "2", "--warmup", "1", "--users", "12"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--master-bind", "127.0.0.1:6000"],
            "--master-bind needs --expect-workers N (the number of Locust workers to wait for)",
        ),
        (
            ["--expect-workers", "2", "--master-bind", "127.0.0.1:99999"],
            "--master-bind '127.0.0.1:99999': port '99999' is not a port number 1-65535; "
            "e.g. --master-bind 0.0.0.0:5557",
        ),
        (
            ["--expect-workers", "2", "--locust-processes", "2"],
            "--locust-processes cannot be combined with --expect-workers; run several workers "
            "(or `locust --worker --processes N`) on the load machines instead",
        ),
        (["--locust-processes", "0"], "--locust-processes '0' must be 1 or more"),
        (["--expect-workers", "x"], "--expect-workers 'x' is not a whole number; give a positive integer"),
    ],
)
def test_bad_load_options_are_refused_before_anything_runs(args, message):
    before = descendants()
    with pytest.raises(CommandError) as info:
        call_command("poolbench", "--sizes", "2", *args, stdout=io.StringIO(), stderr=io.StringIO())
    assert str(info.value) == message
    assert not Sweep.objects.exists() and not Trial.objects.exists()
    assert descendants() == before


def _phase_counts(trial: Trial) -> dict[str, int]:
    return {e["name"]: e["requests"] for e in trial.endpoints}


def _assert_window_clean(trial: Trial) -> None:
    counts = _phase_counts(trial)
    # Not one request of the warm-up in the window, and the per-endpoint rows add up to the total.
    assert "warm-up" not in counts, counts
    assert counts.get("window", 0) > 0, counts
    assert sum(counts.values()) == trial.requests


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_grid_sweep_stores_every_combination_and_prints_the_grid(no_stray_children):
    out = io.StringIO()
    call_command(
        "poolbench", "--workers", "1,2", "--threads", "8,64", "--sizes", "4,16",
        "--duration", "1", "--warmup", "0.5", "--users", "12",
        stdout=out, stderr=io.StringIO(),
    )  # fmt: skip
    text = out.getvalue()
    sweep = Sweep.objects.get()
    trials = list(sweep.trials.all())
    assert len(trials) == 8
    assert {(t.workers, t.threads, t.pool_size) for t in trials} == {
        (w, t, s) for w in (1, 2) for t in (8, 64) for s in (4, 16)
    }
    for t in trials:
        assert t.status == Trial.Status.OK and t.requests > 0
        assert t.max_db_connections == t.workers * t.pool_size
        # Every worker opened its own pool: the database never saw more than the configuration allows.
        assert t.db_stats["peak_connections"] <= t.max_db_connections
    grid_text = text.split("Server concurrency grid")[1]
    rows = [line for line in grid_text.splitlines() if line.split(" x ")[0].strip().isdigit()]
    assert [r.split()[0:3] for r in rows] == [
        ["1", "x", "8"],
        ["1", "x", "64"],
        ["2", "x", "8"],
        ["2", "x", "64"],
    ]
    for t in trials:
        row = next(r for r in rows if r.startswith(f"{t.workers} x {t.threads} "))
        cells = row.split("  ")
        cells = [c.strip() for c in cells if c.strip()]
        cell = cells[1 + [4, 16].index(t.pool_size)]
        assert cell == f"{t.rps:,.0f} ({t.max_db_connections} conns)"
    svg = grid_svg(trials)
    assert svg.startswith("<svg") and svg.count("<rect") == 8
    best = build_grid(trials).best
    assert f'data-rps="{best.rps:.1f}"' in svg


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_locust_processes_measure_the_window_only(no_stray_children):
    call_command(
        "poolbench", "--sizes", "4", "--workers", "1", "--threads", "8", "--locust-processes", "2",
        "--locustfile", str(PHASES), "--duration", "3", "--warmup", "1.5", "--users", "12",
        stdout=io.StringIO(), stderr=io.StringIO(),
    )  # fmt: skip
    trial = Trial.objects.get()
    assert trial.status == Trial.Status.OK
    assert "load from 2 Locust worker process(es)" in trial.notes
    _assert_window_clean(trial)
    assert trial.duration_s == pytest.approx(3, abs=0.5)
    assert trial.pool_stats["total"]["requests_num"] > trial.requests  # the server also served the warm-up


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_worker_loop(port: int, log: Path) -> subprocess.Popen:
    # What the README tells users to run on each load machine: a worker serves one trial, then exits.
    cmd = (
        f"while :; do {sys.executable} -m locust -f {PLUGIN},{PHASES} --worker --master-host 127.0.0.1 "
        f"--master-port {port} --loglevel WARNING; sleep 0.3; done"
    )
    with open(log, "ab") as fh:
        return subprocess.Popen(
            ["sh", "-c", cmd], start_new_session=True, stdout=fh, stderr=subprocess.STDOUT
        )


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_sweep_with_a_master_and_two_workers_on_loopback(tmp_path, no_stray_children):
    port = _free_port()
    workers = [_start_worker_loop(port, tmp_path / f"worker{i}.log") for i in range(2)]
    try:
        out = io.StringIO()
        call_command(
            "poolbench", "--sizes", "2,6", "--workers", "1", "--threads", "8", "--locustfile", str(PHASES),
            "--expect-workers", "2", "--master-bind", f"127.0.0.1:{port}", "--workers-timeout", "30",
            "--duration", "3", "--warmup", "1.5", "--users", "12", stdout=out, stderr=io.StringIO(),
        )  # fmt: skip
        groups = [psutil.Process(w.pid).children(recursive=True) for w in workers]
    finally:
        for w in workers:
            _kill_group(w)
    text = out.getvalue()
    assert f"listens on 127.0.0.1:{port} and waits up to 30s for 2 worker(s)" in text
    assert f"--worker --master-host 127.0.0.1 --master-port {port}" in text
    sweep = Sweep.objects.get()
    assert sweep.status == Sweep.Status.DONE
    assert sweep.load["expect_workers"] == 2 and sweep.load["master_bind"] == f"127.0.0.1:{port}"
    trials = list(sweep.trials.order_by("index"))
    assert [t.pool_size for t in trials] == [2, 6]
    for t in trials:
        assert t.status == Trial.Status.OK and t.failures == 0
        assert "load from 2 Locust worker process(es)" in t.notes
        _assert_window_clean(t)
        assert t.latency_p50_ms <= t.latency_p99_ms
    # The worker processes are gone with their loops (SIGKILL is delivered, give the kernel a moment).
    _, alive = psutil.wait_procs([p for g in groups for p in g], timeout=10)
    assert not alive


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_missing_workers_stop_the_sweep_with_the_worker_command(no_stray_children):
    port = _free_port()
    with pytest.raises(CommandError) as info:
        call_command(
            "poolbench", "--sizes", "2,4", "--workers", "1", "--threads", "8", "--expect-workers", "1",
            "--master-bind", f"127.0.0.1:{port}", "--workers-timeout", "2", *SHORT,
            stdout=io.StringIO(), stderr=io.StringIO(),
        )  # fmt: skip
    message = str(info.value)
    assert message.startswith(
        f"the Locust master waited 2s but fewer than 1 worker(s) connected on port {port}; "
        "start them on the load machines with: "
    )
    assert f"--worker --master-host 127.0.0.1 --master-port {port}" in message
    sweep = Sweep.objects.get()
    assert sweep.status == Sweep.Status.ERROR
    # The sweep stopped at the first trial instead of waiting again for every other one.
    assert [t.status for t in sweep.trials.all()] == [Trial.Status.ERROR]


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_sweep_without_the_fork_server_starts_gunicorn_itself(no_stray_children, settings):
    settings.POOLBENCH = {**settings.POOLBENCH, "FORK_SERVER": False}
    seen: list[str] = []

    def spy(level: str, message: str) -> None:
        seen.append(message)
        if "server up on" in message:  # the trial server is running now: how was it started?
            seen.extend(" ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"]))

    from poolbench.management.commands.poolbench import Command
    from poolbench.sweep.run import run_sweep

    cmd = Command()
    opts = vars(
        cmd.create_parser("manage.py", "poolbench").parse_args(["--sizes", "3", *SHORT, "--threads", "8"])
    )
    sweep = run_sweep(cmd.build_options(opts), spy)
    trial = sweep.trials.get()
    assert trial.status == Trial.Status.OK and trial.requests > 0
    assert any("-m gunicorn poolbench.server.wsgi:application" in line for line in seen)
    assert not any("poolbench.sweep.forkserver" in line and str(ROOT) in line for line in seen)
