"""Start and stop the WSGI server child (gunicorn, gthread workers) for one trial."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from poolbench import wire
from poolbench.sweep import children
from poolbench.wire import CONFIG_ENV, PREFIX, TOKEN_HEADER, WRITE_INTERVAL


class ServerError(RuntimeError):
    """The trial server did not start or did not answer; ``log`` holds the tail of its log."""

    def __init__(self, message: str, log: str = ""):
        super().__init__(message)
        self.log = log


def base_env(settings_module: str) -> dict[str, str]:
    """The environment of a trial server: the command's whole environment, as the server is the site
    and its settings may read any of it (DATABASE_URL, SECRET_KEY...)."""
    # The tests' POOLBENCH_HOLD_IMPORT hook is in it too (see server/wsgi.py).
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = settings_module
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop(CONFIG_ENV, None)
    return env


def fork_server_env() -> dict[str, str]:
    """The fork server's own environment: allow-listed, as it is not the site (its trial servers get
    :func:`base_env` over the socket pair, see sweep/forkserver.py)."""
    return children.allowed_env(PYTHONPATH=os.pathsep.join(p for p in sys.path if p), PYTHONUNBUFFERED="1")


@dataclass
class TrialServer:
    """A gunicorn process serving the site's WSGI app, with this trial's DATABASES entry."""

    config: dict[str, Any]
    workers: int
    threads: int
    state_dir: Path
    bind: str = "127.0.0.1"
    start_timeout: float = 30.0
    port: int = 0
    proc: Any = None  # subprocess.Popen, or forkserver.ForkedProcess
    log_path: Path = field(init=False)
    started_in: float = 0.0
    forkserver: Any = None  # a started forkserver.ForkServer: fork the server from it (no imports)
    _sock: socket.socket | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.log_path = self.state_dir / "server.log"

    @property
    def url(self) -> str:
        host = f"[{self.bind}]" if ":" in self.bind else self.bind
        return f"http://{host}:{self.port}"

    def listen(self) -> None:
        """Bind the port now (the URL is known before the server starts; connections wait in the backlog)."""
        if self._sock is not None:
            return
        family = socket.AF_INET6 if ":" in self.bind else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.bind, 0))
            sock.listen(2048)
        except OSError as exc:
            sock.close()
            raise ServerError(f"cannot listen on {self.bind}: {exc}") from exc
        self.port = sock.getsockname()[1]
        self._sock = sock

    def start(self) -> None:
        t0 = time.monotonic()
        config_path = self.state_dir / "trial.json"
        # The file holds the database password: readable by this user only.
        fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({**self.config, "state_dir": str(self.state_dir)}, fh)
        # Bind here and hand the socket over: the port is free and known before the child starts.
        self.listen()
        sock = self._sock
        assert sock is not None
        env = base_env(self.config["settings_module"])
        env[CONFIG_ENV] = str(config_path)
        options = [
            "--workers", str(self.workers),
            "--threads", str(self.threads),
            "--worker-class", "gthread",
            "--worker-connections", str(max(1000, self.threads * 4)),
            "--backlog", "2048",
            "--timeout", "120",
            "--graceful-timeout", "3",
            "--keep-alive", "5",
            "--log-level", "warning",
            "--error-logfile", str(self.log_path),
            "--chdir", os.getcwd(),
        ]  # fmt: skip
        try:
            if self.forkserver is not None and self.forkserver.alive:
                self.proc = self.forkserver.spawn(
                    [wire.SERVER_APP, "--bind", "fd://{fd}", *options],
                    env, sock.fileno(), str(self.log_path),
                )  # fmt: skip
            else:
                args = [sys.executable, "-m", "gunicorn", wire.SERVER_APP]
                args += ["--bind", f"fd://{sock.fileno()}", *options]
                with open(self.log_path, "ab") as log:
                    self.proc = children.spawn(
                        args, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                        pass_fds=(sock.fileno(),),
                    )  # fmt: skip
        finally:
            sock.close()
            self._sock = None
        self._wait_ready()
        self.started_in = time.monotonic() - t0

    def _wait_ready(self) -> None:
        # The first answer shows the app loads; gunicorn boots the other workers alongside it and
        # the warm-up covers any that are a moment behind.
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                reason = children.last_exception(self.log_path)
                raise ServerError(
                    f"the server exited with code {self.proc.returncode} before answering"
                    + (f": {reason}" if reason else ""),
                    children.tail(self.log_path, 40),
                )
            try:
                if self.request(f"{PREFIX}ping", timeout=1.0)[0] == 200:
                    return
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.05)
        raise ServerError(
            f"the server did not answer on {self.url} within {self.start_timeout:g}s",
            children.tail(self.log_path),
        )

    def request(
        self, path: str, *, timeout: float = 5.0, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(self.bind, self.port, timeout=timeout)
        try:
            conn.request("GET", path, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def get(self, path: str, *, headers: dict[str, str] | None = None) -> tuple[int, bytes, str]:
        """One GET of the site's page, redirects not followed: (status, body, Location)."""
        conn = http.client.HTTPConnection(self.bind, self.port, timeout=30.0)
        try:
            conn.request("GET", path, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read(), resp.getheader("Location") or ""
        finally:
            conn.close()

    def stats(self, load_ended: float | None = None) -> dict[str, Any]:
        """The pool statistics of every worker; ``load_ended`` (wall clock) saves waiting when it is past."""
        # Every worker writes its statistics each WRITE_INTERVAL: wait until one write after the load ended.
        settled = (load_ended or time.time()) + WRITE_INTERVAL + 0.05
        time.sleep(max(0.0, min(WRITE_INTERVAL + 0.05, settled - time.time())))
        for attempt in range(3):
            # A busy worker may drop a connection right after the load stops; ask again.
            try:
                status, body = self.request(
                    f"{PREFIX}stats", timeout=10.0, headers={TOKEN_HEADER: self.config["token"]}
                )
                break
            except (OSError, http.client.HTTPException) as exc:
                if attempt == 2:
                    raise ServerError(
                        f"the statistics endpoint did not answer: {exc}", self.log_tail()
                    ) from exc
                time.sleep(0.3)
        if status != 200:
            raise ServerError(f"the statistics endpoint answered {status}: {body[:200]!r}")
        return json.loads(body)

    def stop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        # The load is over and the statistics are read: nothing in the server is worth a graceful
        # shutdown (gunicorn's takes 0.3-1 s). Killing the group closes its sockets; the database sees
        # the connections close at once.
        children.stop(self.proc, grace=0.0, sig=signal.SIGKILL)

    def log_tail(self, lines: int = 30) -> str:
        return children.tail(self.log_path, lines)
