"""Nothing leaked, nothing left behind (issue 16, items 5, 6, 7, 11): passwords are filtered by
structure, children that are not the site get an allow-listed environment, the fork server's log
stays in a private directory, the --login-user session is short-lived, and the messages say what
really happened."""

from __future__ import annotations

import os
import secrets
import signal
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import psutil
import pytest
from django.utils import timezone

from poolbench.lifeline import PARENT_ENV
from poolbench.management.commands.poolbench import Command
from poolbench.sweep import children
from poolbench.sweep.options import bind_warning
from poolbench.sweep.run import start_fork_server
from poolbench.sweep.search import SWEEP_MARGIN, planned_seconds
from poolbench.sweep.site import create_login_session
from poolbench.sweep.targets import redact
from poolbench.wire import FORK_SERVER_MODULE
from tests.conftest import run_manage
from tests.live import LiveManage, drop_role, pg_admin, pg_conninfo, scratch_database, stored_rows

SUFFIX = os.environ.get("POOLBENCH_TEST_SUFFIX", "main")
SHORT = ["--duration", "1", "--warmup", "0.5", "--users", "4", "--workers", "1", "--threads", "4"]


# --- redact(): by structure, never by substring ---------------------------------------------------


def test_a_one_character_password_does_not_corrupt_the_output():
    text = "Sweep #12: [1/2] pool 10, 1 worker(s) x 1 thread(s); postgres://pb:1@127.0.0.1:5432/db"
    assert redact(text, ["1"]) == (
        "Sweep #12: [1/2] pool 10, 1 worker(s) x 1 thread(s); postgres://pb:***@127.0.0.1:5432/db"
    )
    assert redact("manage.py poolbench --sizes 1,10 --repeat 1", ["1"]) == (
        "manage.py poolbench --sizes 1,10 --repeat 1"
    )


def test_a_password_is_removed_in_every_encoding():
    decoded = "S3cretPW!x"
    for form in (decoded, quote(decoded, safe=""), "S3cret%50W%21x"):
        assert redact(f"failed: {form}.", [decoded]) == "failed: ***.", form
        assert redact(f"url postgres://pb:{form}@h/db", [decoded]) == "url postgres://pb:***@h/db"
    # Only as a whole token: a longer word that merely contains it stays.
    assert redact(f"x{decoded}y", [decoded]) == f"x{decoded}y"


def test_unencoded_characters_and_keywords_in_passwords_are_covered():
    assert redact("postgres://pb:a/b?c@d@h:99999/x", []) == "postgres://pb:***@h:99999/x"
    assert redact("{'PASSWORD': 'Zq9', 'HOST': 'h'}", []) == "{'PASSWORD': ***, 'HOST': 'h'}"
    assert redact("PGPASSWORD=Zq9 psql", []) == "PGPASSWORD=*** psql"
    long = secrets.token_urlsafe(96)
    assert redact(f"error ({long})", [long]) == "error (***)"


@pytest.mark.parametrize("password", ["Zq9/Sec?ret", "Zq9Secret"])
def test_a_database_url_that_cannot_be_parsed_is_one_line_without_the_password(password, tmp_path):
    port = "5432" if "/" in password else "99999"
    env = {"DATABASE_URL": f"postgres://pb:{password}@127.0.0.1:{port}/db", "TMPDIR": str(tmp_path)}
    result = run_manage("poolbench", "--sizes", "2", env=env, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: DATABASE_URL cannot be parsed: its port is not a number 0-65535, or its password holds a "
        "'/', '?', '#' or '@' that is not percent-encoded (write them %2F, %3F, %23, %40); use "
        "postgres://USER@HOST:5432/NAME, mysql://USER@HOST:3306/NAME or sqlite:///PATH"
    ]
    assert "Zq9" not in result.stdout + result.stderr


# --- every byte poolbench writes or passes on -------------------------------------------------------

PASSWORDS = {
    "one-character": ("1", "1"),
    "percent-encoded": ("S3cretPW!x", "S3cret%50W%21x"),  # (the password, as written in DATABASE_URL)
    "long": ("L" + secrets.token_hex(40), None),
}


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.parametrize("kind", list(PASSWORDS))
def test_no_password_reaches_output_rows_or_children(kind, tmp_path):
    password, written = PASSWORDS[kind]
    written = written or quote(password, safe="")
    role = f"poolbench_{SUFFIX}_sec"
    drop_role(role)
    with pg_admin() as admin:  # the server trusts 127.0.0.1: the password is sent but not needed
        admin.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'")
    held = tmp_path / "release"
    try:
        with scratch_database(f"poolbench_{SUFFIX}_sec", owner=role) as name:
            info = pg_conninfo(name)
            env = {
                "DATABASE_URL": f"postgres://{role}:{written}@{info['host']}:{info['port']}/{name}",
                "PGPASSWORD": password,
            }
            migrated = LiveManage("migrate", "-v", "0", env=env, tmpdir=tmp_path)
            assert migrated.finish() == 0, migrated.stderr
            # The planted symlink at the fork server's old, predictable log path (item 5).
            victim = tmp_path / "victim"
            run = LiveManage(
                "poolbench", "--sizes", "2", *SHORT, env={**env, "POOLBENCH_HOLD_IMPORT": str(held)},
                tmpdir=tmp_path,
            )  # fmt: skip
            (tmp_path / f"poolbench-forkserver-{run.proc.pid}.log").symlink_to(victim)
            # The trial server is held at import: Locust, the fork server and its child all run now.
            wait_for(lambda: (tmp_path / "release.held").exists(), run)
            procs = {p.pid: p for p in run.children()}
            seen = {pid: (p.cmdline(), p.environ()) for pid, p in procs.items()}
            held.touch()
            code = run.finish()
            with pg_admin(name) as db:
                stored = stored_rows(db)
                command = db.execute("SELECT command FROM poolbench_sweep").fetchone()[0]
    finally:
        drop_role(role)
    assert code == 0, run.stdout + run.stderr
    forms = {password, written, quote(password, safe="")}
    # Locust, the fork server, and the trial server forked from it (its arbiter and held worker
    # show the fork server's command line: they are forks of it).
    forks = [pid for pid, (cmd, _env) in seen.items() if FORK_SERVER_MODULE in " ".join(cmd)]
    assert any("locust" in " ".join(cmd) for cmd, _env in seen.values()) and len(forks) >= 3, seen
    for cmd, environ in seen.values():
        # No child but the site gets the site's environment; the forked trial server has it in its
        # os.environ only, never in its process environment.
        assert "DATABASE_URL" not in environ and "PGPASSWORD" not in environ, (cmd, sorted(environ))
        if len(password) > 1:  # a one-character password is in every text: its variables are checked above
            assert not any(f in " ".join([*cmd, *environ.values()]) for f in forms), cmd
    assert command == "manage.py poolbench --sizes 2 " + " ".join(SHORT)
    assert "***" not in run.stdout + run.stderr
    assert "Sweep #1: 1 trial(s) against PostgreSQL" in run.stdout
    if len(password) > 1:
        assert not any(f in run.stdout + run.stderr for f in forms)
        assert [row for row in stored if any(f in row for f in forms)] == []
    else:
        assert [row for row in stored if f":{password}@" in row or "***" in row] == []
    # Nothing of the fork server is left in TMPDIR, and the planted symlink was not followed.
    assert not victim.exists()
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("poolbench-"))
    assert left == [f"poolbench-forkserver-{run.proc.pid}.log"]  # the planted symlink itself


def wait_for(condition, run: LiveManage, timeout: float = 90) -> None:
    """Poll for ``condition`` (the phase itself is held by the hook, not timed)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert run.proc.poll() is None, f"exited early:\n{run.stdout}\n{run.stderr}"
        assert time.monotonic() < deadline, f"timed out:\n{run.stdout}\n{run.stderr}"
        run.children()
        time.sleep(0.05)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_fork_server_log_is_private_and_removed(monkeypatch, tmp_path, no_stray_children):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    victim = tmp_path / "victim"
    (tmp_path / f"poolbench-forkserver-{os.getpid()}.log").symlink_to(victim)
    server = start_fork_server(_options("--sizes", "2"))
    assert server is not None
    try:
        directory = Path(server.state_dir)
        assert directory.parent == tmp_path and (directory.stat().st_mode & 0o777) == 0o700
        assert (Path(server.log_path).stat().st_mode & 0o777) == 0o600
        environ = psutil.Process(server.proc.pid).environ()
        assert set(environ) <= children.ALLOWED_ENV | {"PYTHONPATH", "PYTHONUNBUFFERED", PARENT_ENV} | {
            k for k in environ if k.startswith("LC_")
        }
    finally:
        server.stop()
    assert not victim.exists()
    assert [p.name for p in tmp_path.iterdir()] == [f"poolbench-forkserver-{os.getpid()}.log"]


# --- the --login-user session -------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_login_session_expires_with_the_sweep():
    from django.contrib.auth.models import User
    from django.contrib.sessions.models import Session

    User.objects.create_superuser("alice-rel16", password="pw")
    options = _options("--sizes", "2,4", "--duration", "3", "--warmup", "1", "--login-user", "alice-rel16")
    planned = planned_seconds(options)
    assert planned == 2 * (options.start_timeout + 1 + 3 + 60) + SWEEP_MARGIN
    session = create_login_session(options.login_user, planned)
    try:
        expires = Session.objects.get(session_key=session.session_key).expire_date
        left = (expires - timezone.now()).total_seconds()
        assert planned - 5 <= left <= planned  # not the 14 days of SESSION_COOKIE_AGE
    finally:
        session.delete()
    assert not Session.objects.filter(session_key=session.session_key).exists()


def _options(*args: str):
    command = Command()
    parser = command.create_parser("manage.py", "poolbench")
    return command.build_options(vars(parser.parse_args(list(args))))


# --- item 11: the signal named, loopback --bind --------------------------------------------------------


@pytest.mark.parametrize(
    ("signum", "reason"),
    [(signal.SIGINT, "Ctrl-C or SIGINT"), (signal.SIGTERM, "SIGTERM"), (signal.SIGHUP, "SIGHUP")],
)
def test_the_stop_reason_names_the_signal(signum, reason):
    children.reset_interrupted()
    try:
        with pytest.raises(KeyboardInterrupt):
            children.on_stop_signal(signum, None)
        children.on_stop_signal(signal.SIGINT, None)  # a second one is ignored and changes nothing
        assert children.stop_reason() == reason
    finally:
        children.reset_interrupted()


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "127.1.2.3", "::1", "localhost"])
def test_loopback_binds_give_no_warning(address):
    assert bind_warning(address) == ""


def test_a_wildcard_bind_says_the_whole_site_is_served():
    assert bind_warning("0.0.0.0") == (
        "The trial servers will listen on 0.0.0.0: the whole site, not only the probe, is served on every "
        "network this machine is on while the sweep runs (the statistics endpoint still needs this run's token)."
    )
    assert "the whole site" in bind_warning("::") and "every network" in bind_warning("::")
    assert "to the network of 10.1.2.3" in bind_warning("10.1.2.3")
