"""`make admin` (project/serve_admin.py): the demo's admin, styled with DEBUG off, under a real gunicorn.

Each test runs the command as a user would, as a child in its own process group, with the results in a
SQLite file of its own (DATABASE_URL) and no terminal on stdin: the superuser path without a TTY.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.conftest import ROOT

ADMIN_URL = re.compile(r"The admin: (http://127\.0\.0\.1:\d+/admin/)")
PASSWORD_LINE = re.compile(r"Created the superuser 'admin' with password (\S+) \(shown this once")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DemoAdmin:
    """`python -m project.serve_admin` running; its output read until the server answers."""

    def __init__(self, db: Path, port: int, **env: str):
        self.port = port
        full = {**os.environ, "DATABASE_URL": f"sqlite:///{db}", "DEBUG": "0", **env}
        full.pop("DJANGO_SETTINGS_MODULE", None)  # the demo's own settings, as `make admin` has them
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "project.serve_admin", "--port", str(port)],
            cwd=ROOT, env=full, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True,
        )  # fmt: skip
        self.lines: list[str] = []
        # The command prints its URL, then execs gunicorn: read until the URL, then poll the port.
        for line in self.proc.stdout:
            self.lines.append(line)
            if ADMIN_URL.search(line):
                break
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login/", timeout=2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"the demo admin did not answer: {''.join(self.lines)}")

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self) -> None:
        pids = [self.proc.pid] + [c.pid for c in psutil.Process(self.proc.pid).children(recursive=True)]
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=30)
        gone, alive = psutil.wait_procs([p for p in map(_process, pids) if p], timeout=10)
        assert not alive, f"left running: {alive}"


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


def get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.headers.get("Content-Type", ""), r.read()


def test_make_admin_serves_a_styled_admin_with_debug_off_and_creates_one_superuser(tmp_path):
    db, port = tmp_path / "results.sqlite3", free_port()
    demo = DemoAdmin(db, port)
    try:
        assert ADMIN_URL.search(demo.output).group(1) == f"http://127.0.0.1:{port}/admin/"
        # No terminal: a generated password, printed once.
        password = PASSWORD_LINE.search(demo.output).group(1)
        assert len(password) >= 12
        status, _, body = get(f"http://127.0.0.1:{port}/admin/login/")
        css = re.findall(r'href="(/static/admin/css/[^"]+\.css)"', body.decode())
        assert status == 200 and "/static/admin/css/base.css" in css
        for path in css:
            status, content_type, text = get(f"http://127.0.0.1:{port}{path}")
            assert status == 200 and content_type.startswith("text/css"), path
            assert len(text) > 100
        # The generated password logs in (Django checks it: the hash in the SQLite file is not read here).
        from playwright.sync_api import sync_playwright

        from tests.test_admin_browser import CHROMIUM, CHROMIUM_ARGS

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1200, "height": 700})
            page.goto(f"http://127.0.0.1:{port}/admin/login/?next=/admin/poolbench/sweep/")
            page.fill("#id_username", "admin")
            page.fill("#id_password", password)
            page.click("input[type=submit]")
            page.wait_for_selector("#changelist")
            # Styled: the admin's stylesheet applied (its header bar is coloured, not the browser default).
            header = page.evaluate("getComputedStyle(document.querySelector('#header')).backgroundColor")
            assert header not in ("rgba(0, 0, 0, 0)", "transparent"), header
            (ROOT / "test-artifacts").mkdir(exist_ok=True)
            page.screenshot(path=str(ROOT / "test-artifacts" / "make-admin-debug-off.png"), full_page=True)
            browser.close()
    finally:
        demo.stop()
    # Run again: the superuser is there, no new one, no password printed.
    again = DemoAdmin(db, port)
    try:
        assert "A superuser exists already: log in with it." in again.output
        assert "password" not in again.output.lower().replace("log in with it", "")
    finally:
        again.stop()


def test_make_admin_takes_the_password_from_the_environment_and_never_prints_it(tmp_path):
    secret = "s3cret-from-env-xyz"
    demo = DemoAdmin(tmp_path / "r.sqlite3", free_port(), POOLBENCH_ADMIN_PASSWORD=secret)
    try:
        assert "Created the superuser 'admin' with the password in POOLBENCH_ADMIN_PASSWORD." in demo.output
        assert secret not in demo.output
    finally:
        demo.stop()


def test_make_admin_refuses_a_bad_port_before_starting_anything(tmp_path):
    db = tmp_path / "r.sqlite3"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run(
        [sys.executable, "-m", "project.serve_admin", "--port", "http"], cwd=ROOT, env=env,
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "argument --port: 'http' is not a TCP port; give 1-65535, e.g. --port 8000" in done.stderr
    assert not db.exists()  # nothing migrated, no user written


@pytest.mark.parametrize("text", ["0", "70000"])
def test_port_type_names_the_range(text):
    import argparse

    from project.serve_admin import port

    with pytest.raises(argparse.ArgumentTypeError, match="give 1-65535"):
        port(text)


def logs_in(port: int, username: str, password: str) -> bool:
    """Django's login form, as a browser posts it (CSRF cookie and token); True if the admin let us in."""
    import http.cookiejar
    import urllib.parse

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    url = f"http://127.0.0.1:{port}/admin/login/"
    form = opener.open(url, timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    data = urllib.parse.urlencode(
        {"csrfmiddlewaretoken": token, "username": username, "password": password, "next": "/admin/"}
    ).encode()
    request = urllib.request.Request(url, data=data, headers={"Referer": url})
    with opener.open(request, timeout=10) as answer:
        return answer.geturl().endswith("/admin/") and "id_password" not in answer.read().decode()


def test_make_admin_asks_for_the_password_on_a_terminal(tmp_path):
    """stdin a terminal (a pty, the command's controlling terminal): asked twice, a mismatch asked again."""
    import fcntl
    import pty
    import select
    import termios

    master, slave = pty.openpty()
    port = free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'r.sqlite3'}", "DEBUG": "0"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop("POOLBENCH_ADMIN_PASSWORD", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "project.serve_admin", "--port", str(port)], cwd=ROOT, env=env,
        stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
    )  # fmt: skip
    os.close(slave)
    seen, done = "", 0

    def read_until(text: str) -> None:
        # Only output after the previous prompt counts: typing before getpass has switched the echo off
        # would be flushed away (it sets the terminal with TCSAFLUSH).
        nonlocal seen, done
        deadline = time.monotonic() + 60
        while text not in seen[done:] and time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                seen += os.read(master, 4096).decode(errors="replace")
        assert text in seen[done:], seen
        done = seen.index(text, done) + len(text)

    try:
        read_until("Password for the new superuser 'admin': ")
        os.write(master, b"first-try-1\n")
        read_until("Again: ")
        os.write(master, b"something-else\n")
        read_until("The two passwords differ; try again.")
        read_until("Password for the new superuser 'admin': ")
        os.write(master, b"typed-pass-42\n")
        read_until("Again: ")
        os.write(master, b"typed-pass-42\n")
        read_until("The admin: ")
        assert "Created the superuser 'admin' with the password you typed." in seen
        assert "typed-pass-42" not in seen  # not echoed
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login/", timeout=2).close()
                break
            except OSError:
                time.sleep(0.1)
        assert logs_in(port, "admin", "typed-pass-42") and not logs_in(port, "admin", "first-try-1")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        os.close(master)
