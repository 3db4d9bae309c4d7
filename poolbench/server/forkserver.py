"""The fork server's child: ``python -m poolbench.server.forkserver FD``, started by
:class:`poolbench.sweep.forkserver.ForkServer` once per sweep.

It imports framework modules only (gunicorn, Django, the database drivers), never the site's code or
settings, and opens no connection; for each request on its control socket it forks a gunicorn arbiter
for one trial, with the trial's listening socket. It exits, killing its trial servers, when the
orchestrator goes away.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from typing import Any

from poolbench.lifeline import die_with_parent

# Framework modules every trial server imports: most of the start-up time (0.27 s of 0.35 s for
# the demo site when measured), and none of them runs the site's own code or reads its settings.
WARM_MODULES = [
    "gunicorn.app.wsgiapp", "gunicorn.workers.gthread", "django.conf", "django.core.handlers.wsgi",
    "django.core.servers.basehttp", "django.db.models", "django.http", "django.urls", "django.template",
    "django.forms", "django.core.checks", "django.middleware.common", "django.middleware.csrf",
    "django.contrib.sessions.backends.db", "django.contrib.messages.middleware",
    "django.db.backends.postgresql.base", "django.db.backends.mysql.base", "psycopg", "psycopg_pool",
]  # fmt: skip


def _warm_up() -> None:
    """Import what every trial server imports, except the site: its code (settings, apps, WSGI module)
    runs in each trial's workers as before, after the trial's settings are applied."""
    import importlib

    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # a backend that is not installed, say: the trial imports what it needs
            pass


def _run_gunicorn(request: dict[str, Any], fd: int, control: socket.socket, parent: int) -> None:
    """In the forked child: become a process group of its own and run gunicorn's arbiter."""
    code = 1
    try:
        die_with_parent(parent)  # the fork server killed: this trial server goes too
        os.setsid()
        control.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.environ.update(request["env"])
        from gunicorn.app.wsgiapp import WSGIApplication

        sys.argv = ["gunicorn", *[a.replace("{fd}", str(fd)) for a in request["args"]]]
        WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]").run()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def main(control_fd: int, parent: int | None) -> None:
    # The command killed (SIGKILL): the kernel ends this process, and so its trial servers (issue 16).
    die_with_parent(parent)
    control = socket.socket(fileno=control_fd)
    forked: set[int] = set()

    def reap(*_: Any) -> None:
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            forked.discard(pid)

    signal.signal(signal.SIGCHLD, reap)
    try:
        _warm_up()
        control.sendall(json.dumps({"ready": True}).encode() + b"\n")
    except BaseException as exc:
        control.sendall(json.dumps({"ready": False, "error": repr(exc)}).encode() + b"\n")
        raise
    buffer = b""
    try:
        while True:
            try:
                data, fds, _flags, _addr = socket.recv_fds(control, 65536, 4)
            except InterruptedError:
                continue
            if not data:
                break  # the orchestrator is gone
            buffer += data
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                request = json.loads(line)
                fd = fds.pop(0) if fds else -1
                me = os.getpid()
                pid = os.fork()
                if pid == 0:
                    _run_gunicorn(request, fd, control, me)
                forked.add(pid)
                os.close(fd)
                control.sendall(json.dumps({"pid": pid}).encode() + b"\n")
    finally:
        for pid in list(forked):
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


if __name__ == "__main__":
    main(int(sys.argv[1]), None)
