"""Run Locust headless as a child process against a trial server, and read what it measured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import children
from .serve import MEASURE_MARK
from .targets import known_passwords

PLUGIN = Path(__file__).with_name("locust_plugin.py")
DEFAULT_LOCUSTFILE = Path(__file__).with_name("locustfile.py")


class LoadError(RuntimeError):
    def __init__(self, message: str, log: str = ""):
        super().__init__(message)
        self.log = log


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

    def as_dict(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "spawn_rate": self.spawn_rate,
            "duration": self.duration,
            "warmup": self.warmup,
            "locustfile": str(self.locustfile),
            "paths": [list(p) for p in self.paths],
            "processes": self.processes,
        }


def locust_command(settings: LoadSettings, host: str, out: Path, csv_prefix: Path) -> list[str]:
    spawn_rate = settings.spawn_rate or settings.users  # 0 = everyone at once
    # The plugin ends the run `duration` after the warm-up; this limit only catches a stuck plugin.
    run_time = max(1, int(settings.warmup + settings.duration + 30))
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
        "--csv", str(csv_prefix),
        "--poolbench-warmup", str(settings.warmup),
        "--poolbench-out", str(out),
        "--poolbench-mark", str(out.parent / MEASURE_MARK),
        "--poolbench-duration", str(settings.duration),
        "--loglevel", "WARNING",
    ]  # fmt: skip
    if settings.processes > 1:
        args += ["--processes", str(settings.processes)]
    return args


def run_load(
    settings: LoadSettings,
    host: str,
    state_dir: Path,
    *,
    on_tick: Callable[[float, float], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    on_measuring: Callable[[], None] | None = None,
    tick: float = 5.0,
) -> dict[str, Any]:
    """Run one Locust load against ``host``; return the plugin's output (see locust_plugin.py)."""
    out = state_dir / "locust.json"
    log_path = state_dir / "locust.log"
    # Locust never needs the database: leave out any variable that carries one of its passwords
    # (DATABASE_URL=postgres://user:secret@..., say), so a scenario or its logs cannot show it.
    passwords = known_passwords()
    env = {k: v for k, v in os.environ.items() if not any(p in v for p in passwords)}
    env["POOLBENCH_PATHS"] = json.dumps([list(p) for p in settings.paths]) if settings.paths else ""
    env["POOLBENCH_COOKIE"] = settings.cookie
    env.pop("DJANGO_SETTINGS_MODULE", None)
    planned = settings.warmup + settings.duration
    with open(log_path, "ab") as log:
        proc = children.spawn(
            locust_command(settings, host, out, state_dir / "locust"),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=str(state_dir),
        )  # fmt: skip
    if on_start:
        on_start(proc.pid)
    try:
        start = time.monotonic()
        last_tick = start
        deadline = start + planned + 60
        marker = Path(f"{out}.measuring")
        while proc.poll() is None:
            now = time.monotonic()
            if on_measuring and marker.exists():
                on_measuring()
                on_measuring = None
            if now > deadline:
                raise LoadError(
                    f"Locust did not finish within {planned + 60:.0f}s", children.tail(log_path)
                )
            if on_tick and now - last_tick >= tick:
                last_tick = now
                on_tick(now - start, planned)
            time.sleep(0.1)
    except KeyboardInterrupt as exc:
        # SIGTERM makes Locust run its shutdown, which fires `quitting`: the plugin then writes
        # what was measured so far, and the interrupted trial keeps it.
        with children.shielded(reraise=False):
            children.stop(proc, grace=5.0)
            exc.partial = read_output(out)  # type: ignore[attr-defined]
        raise
    finally:
        children.stop(proc, grace=5.0)
    output = read_output(out)
    if output is None:
        raise LoadError(
            f"Locust exited with code {proc.returncode} and wrote no results", children.tail(log_path)
        )
    return output


def read_output(path: Path) -> dict[str, Any] | None:
    """The plugin's JSON, or None when Locust did not get as far as writing it."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None
