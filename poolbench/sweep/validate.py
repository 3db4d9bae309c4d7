"""Checks of the options that need more than the option's own text (issue 16, item 10): the scenario is
loaded by Locust itself, the output directories are written to, the master's port is bound, the
settings module is the one the command runs with. Each raises :class:`PlanError` naming the fix,
before the sweep's row is written and before any server starts.
"""

from __future__ import annotations

import errno
import socket
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from poolbench.sweep.load import DEFAULT_LOCUSTFILE, DEFAULT_MASTER_PORT
from poolbench.sweep.plan import PlanError

# Seconds Locust may take to import a scenario and list its users (a busy 2-core machine: 1-4 s).
LOCUST_CHECK_TIMEOUT = 60.0


def check_before_start(values: Mapping[str, Any], target: Any) -> None:
    """Every check of this module, in the order of the options."""
    if values.get("settings"):
        check_settings_module(values["settings"])
    if values.get("login_user") is not None and target.embedded:
        raise PlanError(
            f"--login-user {values['login_user']} cannot be used with the embedded PostgreSQL: the site's "
            "users, sessions (django_session) and pages are in its own database, not in the embedded one; "
            "benchmark the site's database instead (--database ALIAS, or DATABASE_URL in the demo project)"
        )
    for flag in ("report", "json", "csv"):
        if values.get(flag):
            check_writable_directory(Path(values[flag]), f"--{flag}")
    if values.get("expect_workers"):
        given = values.get("master_bind")
        check_master_port(*(given or ("*", DEFAULT_MASTER_PORT)), given=bool(given))
    locustfile = values.get("locustfile")
    if locustfile and Path(locustfile).resolve() != DEFAULT_LOCUSTFILE.resolve():
        check_locustfile(Path(locustfile))


def check_settings_module(wanted: str) -> None:
    """The trial servers load DJANGO_SETTINGS_MODULE, which ``--settings`` sets: it must be the module
    this command runs with, or the two would measure different sites (a manage.py that loads the
    settings before Django reads --settings; call_command(), which never applies it)."""
    from django.conf import settings

    loaded = getattr(settings, "SETTINGS_MODULE", None) if settings.configured else None
    if not wanted or not loaded or wanted == loaded:
        return
    import importlib.util

    try:
        found = importlib.util.find_spec(wanted) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise PlanError(
            f"--settings {wanted}: no such module; give the dotted path of your settings module as "
            f"Python imports it, e.g. --settings {loaded}"
        )
    raise PlanError(
        f"--settings {wanted}: this command already runs with the settings {loaded} (loaded before "
        f"--settings was read), and the trial servers would load {wanted}; run "
        f"`DJANGO_SETTINGS_MODULE={wanted} python manage.py poolbench ...` instead"
    )


def check_writable_directory(path: Path, flag: str) -> None:
    """Create (and remove) a file next to ``path``: permission bits say little to root (/proc, /sys)."""
    parent = path.expanduser().parent if str(path.expanduser().parent) else Path(".")
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".poolbench-check-"):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise PlanError(
            f"{flag} {path}: cannot create a file in {parent} ({reason}); choose a directory you can write, "
            f"e.g. {flag} ./{path.name or 'report'}"
        ) from None


def check_master_port(host: str, port: int, *, given: bool = True) -> None:
    """The Locust master of --expect-workers listens on HOST:PORT: it must be free now."""
    what = (
        f"--master-bind {host}:{port}"
        if given
        else f"--expect-workers: Locust's master port {port} (the default)"
    )
    bind_host = "" if host in ("*", "0.0.0.0", "") else host.strip("[]")
    family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((bind_host, port))
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise PlanError(
                f"{what}: cannot listen there ({exc.strerror or exc}); use an address "
                "of this machine, e.g. --master-bind 0.0.0.0:5557"
            ) from None
        raise PlanError(
            f"{what}: port {port} is in use; stop what uses it or choose another port for Locust's master, "
            f"e.g. --master-bind {host}:{port + 10}"
        ) from None


def check_locustfile(path: Path) -> None:
    """Load the scenario in a Locust child (``locust -f FILE --list``), as each trial would."""
    if "," in str(path):
        raise PlanError(
            f"--locustfile {path}: the path contains a comma, which Locust reads as a list of files "
            "(-f a.py,b.py); rename the file or its directory, or give a path without a comma"
        )
    from poolbench.sweep.children import allowed_env, last_exception

    with tempfile.TemporaryDirectory(prefix="poolbench-check-") as directory:
        log = Path(directory) / "locust.log"
        with open(log, "wb") as out:
            try:
                code = subprocess.run(
                    [sys.executable, "-m", "locust", "-f", str(path), "--list"],
                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=allowed_env(),
                    cwd=directory, timeout=LOCUST_CHECK_TIMEOUT,
                ).returncode  # fmt: skip
            except subprocess.TimeoutExpired:
                raise PlanError(
                    f"--locustfile {path}: Locust did not load it within {LOCUST_CHECK_TIMEOUT:g}s; "
                    f"check it with `locust -f {path} --list`"
                ) from None
        text = log.read_text(errors="replace")
        failure = last_exception(log)
    if code != 0:
        reason = failure or (text.strip().splitlines() or [f"exit status {code}"])[-1]
        raise PlanError(
            f"--locustfile {path}: Locust cannot load it: {reason}; fix the scenario "
            f"(`locust -f {path} --list` shows the whole error)"
        )
    users = text.split("Available Users:", 1)[1].split() if "Available Users:" in text else []
    if not users:
        raise PlanError(
            f"--locustfile {path}: defines no User class; define one that subclasses locust's HttpUser or "
            "FastHttpUser, with at least one @task"
        )
