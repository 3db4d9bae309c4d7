"""A ``manage.py`` run in a child process that a test can watch line by line and signal, as a
user at a terminal would (issue 8: interruption, faults, secrets)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


class LiveManage:
    """``manage.py`` running in the background; stdout and stderr are collected as they come."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, tmpdir: Path | None = None):
        full_env = {
            k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL")
        }
        # One pass of one worker unless a test says otherwise, as in conftest.run_manage.
        full_env.update({"POOLBENCH_REPEAT": "1", "WEB_CONCURRENCY": "1", **(env or {})})
        full_env["PYTHONUNBUFFERED"] = "1"
        if tmpdir is not None:
            # Trial state, Locust's files and the embedded database all go here: the test can
            # tell its own children and files from those of anything else on the machine.
            full_env["TMPDIR"] = str(tmpdir)
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), *args],
            cwd=ROOT,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self.seen: set[int] = set()  # every descendant pid seen while running
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.out), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, self.err), daemon=True),
        ]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(stream, lines: list[str]) -> None:
        for line in stream:
            lines.append(line.rstrip("\n"))

    @property
    def stdout(self) -> str:
        return "\n".join(self.out)

    @property
    def stderr(self) -> str:
        return "\n".join(self.err)

    def children(self) -> list[psutil.Process]:
        try:
            procs = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            return []
        self.seen.update(p.pid for p in procs)
        return procs

    def wait_for(self, pattern: str, *, timeout: float = 60, after: int = 0) -> int:
        """Wait until a stdout line matches ``pattern`` (regex), from line ``after``; its index."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i in range(after, len(self.out)):
                if re.search(pattern, self.out[i]):
                    self.children()
                    return i
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the pumps catch up once more
                for i in range(after, len(self.out)):
                    if re.search(pattern, self.out[i]):
                        return i
                raise AssertionError(
                    f"exited ({self.proc.returncode}) before {pattern!r}:\n{self.stdout}\n{self.stderr}"
                )
            self.children()
            time.sleep(0.05)
        raise AssertionError(f"no line matched {pattern!r} within {timeout}s:\n{self.stdout}\n{self.stderr}")

    def send(self, sig: int = signal.SIGINT) -> None:
        self.children()
        self.proc.send_signal(sig)

    def finish(self, timeout: float = 120) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        for t in self._threads:
            t.join(timeout=5)
        return code

    def survivors(self) -> list[str]:
        """Descendants seen during the run that are still alive now."""
        alive = []
        for pid in self.seen:
            try:
                p = psutil.Process(pid)
                if p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{pid}: {' '.join(p.cmdline())[:150]}")
            except psutil.Error:
                continue
        return alive


def processes_mentioning(text: str) -> list[str]:
    """Live processes whose command line contains ``text`` (e.g. a test's own TMPDIR)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        cmd = " ".join(proc.info.get("cmdline") or [])
        if text in cmd and proc.info.get("status") != psutil.STATUS_ZOMBIE:
            found.append(f"{proc.info['pid']}: {cmd[:200]}")
    return found


def pg_conninfo(dbname: str = "postgres") -> dict[str, str]:
    """How the tests reach the PostgreSQL server as its administrator (tests.settings' server)."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    return {
        "host": db.get("HOST") or "127.0.0.1",
        "port": str(db.get("PORT") or 5432),
        "user": db.get("USER") or "root",
        "dbname": dbname,
    }


def pg_admin(dbname: str = "postgres"):
    import psycopg

    return psycopg.connect(**pg_conninfo(dbname), autocommit=True)


def stored_rows(db) -> list[str]:
    """Every Sweep and Trial row of the database behind ``db`` (a pg_admin connection), as JSON text."""
    return [
        row[0]
        for table in ("poolbench_sweep", "poolbench_trial")
        for row in db.execute(f"SELECT row_to_json(t)::text FROM {table} t")
    ]


def pg_url(dbname: str, user: str | None = None, password: str | None = None) -> str:
    info = pg_conninfo(dbname)
    auth = user or info["user"]
    if password:
        auth += f":{password}"
    return f"postgres://{auth}@{info['host']}:{info['port']}/{dbname}"


@contextmanager
def scratch_database(name: str, owner: str | None = None) -> Iterator[str]:
    """A PostgreSQL database of the test's own, dropped afterwards (whatever is still connected)."""
    with pg_admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"' + (f' OWNER "{owner}"' if owner else ""))
    try:
        yield name
    finally:
        with pg_admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def drop_role(name: str) -> None:
    with pg_admin() as admin:
        if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone():
            admin.execute(f'DROP ROLE "{name}"')


def own_children_left(before: set[int]) -> list[str]:
    """Children of this test process started since ``before`` that are still alive.

    (conftest's no_stray_children looks at every poolbench process on the machine, which on a
    machine shared with other sweeps also finds theirs.)"""
    left = []
    try:
        procs = psutil.Process().children(recursive=True)
    except psutil.Error:
        return left
    for p in procs:
        if p.pid in before:
            continue
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{p.pid}: {' '.join(p.cmdline())[:150]}")
        except psutil.Error:
            continue
    return left


class TerminalManage(LiveManage):
    """``manage.py`` on a pseudo-terminal of its own, so that a test can press Ctrl-C the way a user
    does: the terminal sends SIGINT to its whole foreground process group."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, tmpdir: Path | None = None):
        import pty

        full_env = {
            k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL")
        }
        full_env.update({"POOLBENCH_REPEAT": "1", "WEB_CONCURRENCY": "1", **(env or {})})  # as LiveManage
        full_env.update(PYTHONUNBUFFERED="1", TERM="dumb")
        if tmpdir is not None:
            full_env["TMPDIR"] = str(tmpdir)
        argv = [sys.executable, str(ROOT / "manage.py"), *args]
        pid, self.fd = pty.fork()  # the child: a new session, the terminal as its controlling tty
        if pid == 0:  # pragma: no cover (the child)
            try:
                os.chdir(ROOT)
                os.execve(sys.executable, argv, full_env)
            finally:
                os._exit(127)
        self.proc = _Forked(pid)
        self.out = []
        self.err = self.out  # one terminal for both
        self.seen = set()
        self._threads = [threading.Thread(target=self._read, daemon=True)]
        self._threads[0].start()

    def _read(self) -> None:
        pending = b""
        while True:
            try:
                data = os.read(self.fd, 4096)
            except OSError:
                data = b""
            if not data:
                break
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                self.out.append(_ANSI.sub("", line.decode(errors="replace")).rstrip("\r"))
        if pending:
            self.out.append(_ANSI.sub("", pending.decode(errors="replace")).rstrip("\r"))

    def press_ctrl_c(self) -> None:
        self.children()
        os.write(self.fd, b"\x03")  # the terminal's INTR character

    def finish(self, timeout: float = 120) -> int:
        code = self.proc.wait(timeout)
        for t in self._threads:
            t.join(timeout=5)
        os.close(self.fd)
        return code


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _Forked:
    """The little of Popen that LiveManage uses, for a pty.fork() child."""

    def __init__(self, pid: int):
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                raise AssertionError(f"manage.py did not exit within {timeout}s")
            time.sleep(0.05)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        os.kill(self.pid, sig)
