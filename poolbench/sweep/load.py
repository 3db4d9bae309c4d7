"""Run Locust headless as a child process against a trial server, and read what it measured."""

from __future__ import annotations

import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from poolbench.sweep import children
from poolbench.wire import MEASURE_MARK

LOADGEN = Path(__file__).resolve().parent.parent / "loadgen"
PLUGIN = LOADGEN / "plugin.py"
DEFAULT_LOCUSTFILE = LOADGEN / "locustfile.py"


class LoadError(RuntimeError):
    def __init__(self, message: str, log: str = ""):
        super().__init__(message)
        self.log = log


class WorkersMissing(LoadError):
    """The Locust master gave up waiting for its workers: no trial can run until they are started."""


DEFAULT_MASTER_PORT = 5557  # Locust's own default


@dataclass
class LoadSettings:
    users: int
    spawn_rate: float
    duration: float
    warmup: float
    locustfile: Path = DEFAULT_LOCUSTFILE
    paths: list[tuple[str, int]] = field(default_factory=list)
    cookie: str = ""
    processes: int = 1
    # Master/worker mode: the Locust master (our child) waits for this many workers started elsewhere.
    expect_workers: int = 0
    master_bind: str = "*"
    master_port: int = DEFAULT_MASTER_PORT
    workers_timeout: float = 60.0
    arrivals: str = "poisson"  # --rate: how the arrival scheduler spaces requests (loadgen/arrivals.py)

    @property
    def distributed(self) -> bool:
        return self.processes > 1 or self.expect_workers > 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "spawn_rate": self.spawn_rate,
            "duration": self.duration,
            "warmup": self.warmup,
            "locustfile": str(self.locustfile),
            "paths": [list(p) for p in self.paths],
            "processes": self.processes,
            "expect_workers": self.expect_workers,
            "master_bind": f"{self.master_bind}:{self.master_port}" if self.expect_workers else "",
            "arrivals": self.arrivals,
        }


def locust_command(settings: LoadSettings, host: str, out: Path, go: Path | None = None) -> list[str]:
    # No --csv: Locust's CSV files were never read, and writing them cost the load generator CPU
    # every second.
    spawn_rate = settings.spawn_rate or settings.users  # 0 = everyone at once
    # The plugin ends the window after --poolbench-duration; --run-time is only the safety net.
    run_time = math.ceil(settings.warmup + settings.duration) + 30
    args = [
        sys.executable, "-m", "locust",
        "-f", f"{PLUGIN},{settings.locustfile}",
        "--headless",
        "--host", host,
        "--users", str(settings.users),
        "--spawn-rate", str(spawn_rate),
        "--run-time", f"{run_time}s",
        "--stop-timeout", "0",
        "--exit-code-on-error", "0",
        "--only-summary",
        "--poolbench-warmup", f"{settings.warmup:g}",
        "--poolbench-duration", f"{settings.duration:g}",
        "--poolbench-out", str(out),
        "--poolbench-arrivals", settings.arrivals,
        "--loglevel", "WARNING",
    ]  # fmt: skip
    if go is not None:
        args += ["--poolbench-go", str(go)]
        # In the trial's state directory (Locust starts in it): tells the server the window has begun.
        args += ["--poolbench-mark", str(go.parent / MEASURE_MARK)]
    if settings.expect_workers:
        args += [
            "--master",
            "--expect-workers", str(settings.expect_workers),
            "--expect-workers-max-wait", f"{settings.workers_timeout:g}",
            "--master-bind-host", settings.master_bind,
            "--master-bind-port", str(settings.master_port),
        ]  # fmt: skip
    elif settings.processes > 1:
        args += ["--processes", str(settings.processes)]
    return args


def worker_command(settings: LoadSettings, master_host: str = "") -> str:
    """The command to run on each load machine in master/worker mode (it serves one trial, then exits)."""
    host = master_host or (settings.master_bind if settings.master_bind not in ("*", "0.0.0.0", "::") else "")
    env = ""
    if settings.paths:
        env = f"POOLBENCH_PATHS={shlex.quote(json.dumps([list(p) for p in settings.paths]))} "
    return (
        f"{env}locust -f {shlex.quote(str(PLUGIN))},{shlex.quote(str(settings.locustfile))} --worker "
        f"--master-host {host or '<address of this machine>'} --master-port {settings.master_port}"
    )


@dataclass
class StartedLoad:
    """A Locust process started ahead of its load: it imports, then waits for the go-file (with the host)."""

    proc: subprocess.Popen[Any]
    directory: Path
    out: Path
    log_path: Path
    go: Path
    stopped: bool = field(default=False, init=False)

    def release(self, host: str, rate: float | None = None) -> None:
        """The go-ahead: it carries what was not known when Locust started, the server's URL (and, with
        --rate or --find-capacity, this trial's arrival rate)."""
        tmp = self.go.with_suffix(".tmp")
        tmp.write_text(json.dumps({"host": host, **({"rate": rate} if rate else {})}), encoding="utf-8")
        os.replace(tmp, self.go)

    def stop(self) -> None:
        """Stop Locust and everything in its process group, once."""
        if self.stopped:
            return
        self.stopped = True
        if self.out.exists():
            # The results are written (and a master has told its workers to quit): nothing left to wait for.
            children.stop(self.proc, grace=0.0, sig=signal.SIGKILL)
        else:
            children.stop(self.proc, grace=1.0)


def start_load(settings: LoadSettings, directory: Path) -> StartedLoad:
    """Start Locust now; it begins the load when released (``StartedLoad.release``)."""
    out, log_path, go = directory / "locust.json", directory / "locust.log", directory / "locust.go"
    # Locust never needs the database, nor the site's settings: an allow-listed environment, so that
    # no DATABASE_URL or PGPASSWORD reaches a scenario or its logs.
    env = children.allowed_env(
        POOLBENCH_PATHS=json.dumps([list(p) for p in settings.paths]) if settings.paths else "",
        POOLBENCH_COOKIE=settings.cookie,
    )
    # The real host is in the go-file; Locust wants one on the command line, so a placeholder here.
    with open(log_path, "ab") as log:
        proc = children.spawn(
            locust_command(settings, "http://127.0.0.1", out, go=go),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=str(directory),
        )  # fmt: skip
    return StartedLoad(proc=proc, directory=directory, out=out, log_path=log_path, go=go)


def run_load(
    settings: LoadSettings,
    host: str,
    state_dir: Path,
    *,
    on_tick: Callable[[float, float], None] | None = None,
    on_measuring: Callable[[], None] | None = None,
    started: StartedLoad | None = None,
    tick: float = 5.0,
) -> dict[str, Any]:
    """Run one Locust load against ``host`` (started now, or ``started`` ahead); the plugin's output."""
    load = started or start_load(settings, state_dir)
    load.release(host)
    return wait_load(settings, load, on_tick=on_tick, on_measuring=on_measuring, tick=tick)


def wait_load(
    settings: LoadSettings,
    load: StartedLoad,
    *,
    on_tick: Callable[[float, float], None] | None = None,
    on_measuring: Callable[[], None] | None = None,
    tick: float = 5.0,
) -> dict[str, Any]:
    """Wait for a released Locust to write its results (see loadgen/plugin.py), then stop it; its output.

    On Ctrl-C/SIGTERM Locust is stopped with SIGTERM, which makes it run its shutdown and fire
    ``quitting``: the plugin then writes what was measured so far, and the ``KeyboardInterrupt``
    carries it as ``partial`` for the interrupted trial to keep.
    """
    try:
        _poll(settings, load, on_tick, on_measuring, tick)
    except KeyboardInterrupt as exc:
        with children.shielded(reraise=False):
            children.stop(load.proc, grace=5.0)
            exc.partial = read_output(load.out)  # type: ignore[attr-defined]
        raise
    finally:
        load.stop()
    if settings.expect_workers and "Gave up waiting for workers" in children.tail(load.log_path, 200):
        raise WorkersMissing(
            f"the Locust master waited {settings.workers_timeout:g}s but fewer than "
            f"{settings.expect_workers} worker(s) connected on port {settings.master_port}; "
            "start them on the load machines with: "
            f"{worker_command(settings)}",
            children.tail(load.log_path),
        )
    output = read_output(load.out)
    if output is None:
        raise LoadError(
            f"Locust exited with code {load.proc.returncode} and wrote no results",
            children.tail(load.log_path),
        )
    return output


def _poll(
    settings: LoadSettings,
    load: StartedLoad,
    on_tick: Callable[[float, float], None] | None,
    on_measuring: Callable[[], None] | None,
    tick: float,
) -> None:
    """Until Locust has written its results (what is left then is its own teardown, not worth waiting for)."""
    planned = settings.warmup + settings.duration
    start = last_tick = time.monotonic()
    allowed = planned + 60 + (settings.workers_timeout if settings.expect_workers else 0)
    deadline = start + allowed
    marker = Path(f"{load.out}.measuring")
    while load.proc.poll() is None and not load.out.exists():
        now = time.monotonic()
        if on_measuring and marker.exists():
            on_measuring()
            on_measuring = None
        if now > deadline:
            raise LoadError(f"Locust did not finish within {allowed:.0f}s", children.tail(load.log_path))
        if on_tick and now - last_tick >= tick:
            last_tick = now
            on_tick(now - start, planned)
        time.sleep(0.02)


def read_output(path: Path) -> dict[str, Any] | None:
    """The plugin's JSON, or None when Locust did not get as far as writing it."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None
