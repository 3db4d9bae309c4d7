"""Child processes: each in its own process group, always stopped, never left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import weakref
from collections.abc import Sequence
from typing import Any

# Every live child, so that an interrupted command can stop whatever is still running.
_LIVE: weakref.WeakSet[subprocess.Popen[Any]] = weakref.WeakSet()


def spawn(args: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """Start a child in a new session (its own process group) so that the whole tree can be stopped."""
    proc = subprocess.Popen(list(args), start_new_session=True, **kwargs)
    _LIVE.add(proc)
    return proc


def _signal_group(proc: subprocess.Popen[Any], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop(proc: subprocess.Popen[Any] | None, *, grace: float = 5.0, sig: int = signal.SIGTERM) -> int | None:
    """Stop a child and everything in its process group: ``sig``, then SIGKILL after ``grace`` seconds."""
    if proc is None:
        return None
    if proc.poll() is None:
        _signal_group(proc, sig)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    # The group may hold grandchildren (gunicorn workers, locust processes) even when the leader is gone.
    _signal_group(proc, signal.SIGKILL)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    _LIVE.discard(proc)
    return proc.returncode


def stop_all() -> None:
    for proc in list(_LIVE):
        stop(proc, grace=2.0)


def wait_for_exit(proc: subprocess.Popen[Any], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return True
        time.sleep(0.05)
    return proc.poll() is not None


def tail(path: str | os.PathLike[str], lines: int = 30) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return "".join(fh.readlines()[-lines:]).strip()
    except OSError:
        return ""
