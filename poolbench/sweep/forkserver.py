"""A fork server for trial servers: gunicorn and Django are imported once per sweep, and each
trial's gunicorn is forked from that warm process instead of starting a new interpreter.

Every trial needs a fresh server process (a pool is created once per process), and starting Python and
importing gunicorn and Django again took most of the time a trial spent outside its measured window
(1-4 s on a busy 2-core machine). Forked from the warm process, a trial server answers in about 0.1 s.

The orchestrator (``ForkServer``) talks to the child (``python -m poolbench.server.forkserver``) over a Unix
socket pair: one JSON line per request, the trial's listening socket passed along (SCM_RIGHTS). The
child imports framework modules only (gunicorn, Django, the database drivers): never the site's code or
settings, and it opens no connection, so each trial server behaves as one started from scratch. The
child exits, killing its trial servers, when the orchestrator goes away.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from poolbench import wire
from poolbench.sweep import children, watchdog

# Kept in the child's command line so that a process listing shows what it is (and tests find strays).
MARKER = wire.SERVER_APP


class ForkServerError(RuntimeError):
    pass


class ForkedProcess:
    """A trial server forked by the fork server: the parts of ``Popen`` that ``children.stop`` uses."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and not _alive(self.pid):
            self.returncode = -1  # not our child: the fork server reaped it, its status is not known here
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0)
            time.sleep(0.01)
        assert self.returncode is not None
        return self.returncode


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


class ForkServer:
    """The orchestrator's end: start the warm child once, then ``spawn()`` a gunicorn per trial."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        # The log lives in a private directory of this sweep's (0700, mkdtemp), created exclusively
        # and never through a symlink, and goes with the directory when the fork server stops.
        self.state_dir = str(watchdog.private_dir("poolbench-fork-"))
        self.log_path = os.path.join(self.state_dir, "forkserver.log")
        self.proc: subprocess.Popen[Any] | None = None
        self.sock: socket.socket | None = None
        self._buffer = b""

    def start(self, timeout: float = 60.0) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
        with os.fdopen(os.open(self.log_path, flags, 0o600), "ab") as log:
            self.proc = children.spawn(
                # MARKER and the directory only label the process (ps, the tests' search for strays).
                [sys.executable, "-m", wire.FORK_SERVER_MODULE, str(theirs.fileno()), MARKER, os.getcwd()],
                env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
            )  # fmt: skip
        theirs.close()
        self.sock = ours
        self.sock.settimeout(timeout)
        reply = self._read()
        if not reply.get("ready"):
            raise ForkServerError(f"the fork server did not start: {reply}")

    def _read(self) -> dict[str, Any]:
        assert self.sock is not None
        while b"\n" not in self._buffer:
            try:
                chunk = self.sock.recv(65536)
            except (TimeoutError, OSError) as exc:
                raise ForkServerError(
                    f"no answer from the fork server ({exc}): {children.tail(self.log_path)}"
                ) from exc
            if not chunk:
                raise ForkServerError(f"the fork server exited: {children.tail(self.log_path)}")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and self.sock is not None

    def spawn(self, args: Sequence[str], env: dict[str, str], listen_fd: int, log_path: str) -> ForkedProcess:
        """Fork a gunicorn with ``args`` ('{fd}' stands for the listening socket), ``env`` and log file.

        ``env`` is the trial server's whole environment (it is the site and reads the site's settings
        from it); it travels over the socket pair and is set in the forked process's ``os.environ``,
        so the fork server's own environment (allow-listed, see sweep/children.py) never holds it.
        """
        assert self.sock is not None
        request = json.dumps({"args": list(args), "env": env, "log": log_path}).encode() + b"\n"
        socket.send_fds(self.sock, [request], [listen_fd])
        reply = self._read()
        if "pid" not in reply:
            raise ForkServerError(f"the fork server could not start a server: {reply.get('error')}")
        proc = ForkedProcess(int(reply["pid"]))
        children._LIVE.add(proc)  # type: ignore[arg-type]  # stopped by stop_all() too, on Ctrl-C
        watchdog.watch_group(proc.pid)  # its own session (server/forkserver.py)
        return proc

    def stop(self) -> None:
        if self.sock is not None:
            self.sock.close()  # the child sees EOF, stops its servers and exits
            self.sock = None
        children.stop(self.proc, grace=2.0)
        watchdog.remove_dir(self.state_dir)
