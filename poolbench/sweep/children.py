"""Child processes: each in its own process group, always stopped, never left behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from poolbench.lifeline import PARENT_ENV
from poolbench.sweep import watchdog

# Every live child, so that an interrupted command can stop whatever is still running.
_LIVE: weakref.WeakSet[subprocess.Popen[Any]] = weakref.WeakSet()


# Signals that end a sweep early. SIGHUP too: a closed terminal must not leave servers behind,
# and the children, in their own sessions, never see it themselves.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_held: list[int] = []  # signals received while shielded, not yet acted on
_depth = 0
_interrupted = False  # a stop signal was acted on: later ones must not cut the cleanup short
_received: int | None = None  # the signal acted on, for the stored message


def on_stop_signal(signum: int, frame: Any) -> None:
    """Signal handler for the command: the first stop signal interrupts, any later one is ignored
    (the first is already stopping everything; a second Ctrl-C must not skip the cleanup)."""
    global _interrupted, _received
    if not _interrupted:
        _interrupted = True
        _received = signum
        raise KeyboardInterrupt


def reset_interrupted() -> None:
    global _interrupted, _received
    _interrupted = False
    _received = None


def stop_reason_received() -> bool:
    """Whether a stop signal was acted on since :func:`reset_interrupted`."""
    return _interrupted


def stop_reason() -> str:
    """The signal that stopped the sweep, in words ("SIGTERM"); Ctrl-C when none was recorded
    (Python's own SIGINT handler raised the KeyboardInterrupt)."""
    if _received is None or _received == signal.SIGINT:
        return "Ctrl-C or SIGINT"
    return signal.Signals(_received).name


# What a child that is not the site (Locust, the fork server) gets of the command's environment:
# never the rest, which may carry the database's password (DATABASE_URL, PGPASSWORD, a settings
# file's own variables), encoded or not. POOLBENCH_TEST_TAG marks the tests' children, and
# POOLBENCH_HOLD_IMPORT is the tests' hook for a forked trial server (see server/wsgi.py).
ALLOWED_ENV = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TERM", "TMPDIR", "TEMP", "TMP",
        "PYTHONPATH", "PYTHONHOME", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV",
        "LD_LIBRARY_PATH", "SSL_CERT_FILE", "SSL_CERT_DIR", "POOLBENCH_TEST_TAG", "POOLBENCH_HOLD_IMPORT",
    }
)  # fmt: skip


def allowed_env(**extra: str) -> dict[str, str]:
    """The command's environment reduced to :data:`ALLOWED_ENV` (and LC_*), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k in ALLOWED_ENV or k.startswith("LC_")}
    env.update(extra)
    return env


def spawn(args: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """Start a child in a new session (its own process group) so that the whole tree can be stopped."""
    # An interrupt between fork and _LIVE.add would leave a child nobody knows about.
    with shielded():
        if kwargs.get("env") is not None:
            kwargs["env"] = {**kwargs["env"], PARENT_ENV: str(os.getpid())}  # see poolbench/lifeline.py
        proc = subprocess.Popen(list(args), start_new_session=True, **kwargs)
        _LIVE.add(proc)
        watchdog.watch_group(proc.pid)  # killed even if the command is (SIGKILL)
    return proc


def _hold(signum: int, frame: Any) -> None:
    _held.append(signum)


@contextmanager
def shielded(*, reraise: bool = True) -> Iterator[None]:
    """Hold Ctrl-C, SIGTERM and SIGHUP until the block ends, so cleanup and saves run to the end.

    A signal received meanwhile (a second Ctrl-C during cleanup included) is raised as
    ``KeyboardInterrupt`` when the outermost shielded block ends, unless that block is already
    leaving with an exception or ``reraise`` is false. Outside the main thread it does nothing
    (Python delivers signals to the main thread only).
    """
    global _depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}
    if _depth == 0:
        _held.clear()
        for sig in STOP_SIGNALS:
            previous[sig] = signal.getsignal(sig)
            signal.signal(sig, _hold)
    _depth += 1
    failed = False
    try:
        yield
    except BaseException:
        failed = True
        raise
    finally:
        _depth -= 1
        if _depth == 0:
            for sig, handler in previous.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
            pending, _held[:] = list(_held), []
            if pending and reraise and not failed:
                on_stop_signal(pending[0], None)


def _signal_group(proc: subprocess.Popen[Any], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop(proc: subprocess.Popen[Any] | None, *, grace: float = 5.0, sig: int = signal.SIGTERM) -> int | None:
    """Stop a child and everything in its process group: ``sig``, then SIGKILL after ``grace`` seconds."""
    if proc is None:
        return None
    with shielded():
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
        watchdog.unwatch_group(proc.pid)
    return proc.returncode


def stop_all() -> None:
    with shielded(reraise=False):
        for proc in list(_LIVE):
            stop(proc, grace=2.0)


def tail(path: str | os.PathLike[str], lines: int = 30) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return "".join(fh.readlines()[-lines:]).strip()
    except OSError:
        return ""


_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Warning|Exit)\b(?::.*)?)$")


def last_exception(path: str | os.PathLike[str]) -> str:
    """The last Python exception line (``SomeError: message``) of a log, or ""."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        match = _EXCEPTION_LINE.match(line.strip())
        if match:
            return match.group(1)
    return ""
