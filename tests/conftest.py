from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent


def descendants() -> set[int]:
    try:
        return {p.pid for p in psutil.Process().children(recursive=True)}
    except psutil.Error:
        return set()


TAG = "POOLBENCH_TEST_TAG"


def stray_processes(pattern: str = "", tag: str | None = None) -> list[str]:
    """gunicorn/locust/postgres processes started by poolbench that are still alive.

    With ``tag``, only those whose environment carries ``POOLBENCH_TEST_TAG=tag``: every child a test
    starts inherits it, so other checkouts' runs on the same machine are not counted.
    """
    out = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(proc.info.get("cmdline") or [])
        if not (
            "poolbench.server.wsgi:application" in cmd or "poolbench-out" in cmd or "poolbench-pg-" in cmd
        ):
            continue
        if pattern not in cmd:
            continue
        if tag is not None:
            try:
                if proc.environ().get(TAG) != tag:
                    continue
            except psutil.Error:
                continue
        out.append(f"{proc.info['pid']}: {cmd[:200]}")
    return out


@pytest.fixture
def no_stray_children(monkeypatch, request):
    """Fail if a test leaves any server, Locust or embedded PostgreSQL child behind."""
    tag = f"{os.getpid()}-{request.node.nodeid}"
    monkeypatch.setenv(TAG, tag)
    yield tag
    left = stray_processes(tag=tag)
    assert not left, f"child processes left running: {left}"


def run_manage(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run ``manage.py`` of the demo project as a user would, in a child process."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL")}
    # One pass of one worker unless a test says otherwise (the demo's POOLBENCH_REPEAT; gunicorn's
    # WEB_CONCURRENCY, which poolbench takes as the site's worker count): the suite's trial counts.
    full_env.update({"POOLBENCH_REPEAT": "1", "WEB_CONCURRENCY": "1", **(env or {})})
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_refused(args: list[str], message: str) -> None:
    """``manage.py poolbench ARGS`` fails with exactly ``message``, having written no row and started no process."""
    from django.core.management import CommandError, call_command

    from poolbench.models import Sweep, Trial

    before = descendants()
    with pytest.raises(CommandError) as info:
        call_command("poolbench", *args)
    assert str(info.value) == message
    assert not Sweep.objects.exists() and not Trial.objects.exists()
    assert descendants() <= before


@pytest.fixture
def viewer(client):
    """A staff user who may only view poolbench's results."""
    from django.contrib.auth.models import Permission, User  # once Django is set up, not at collection

    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_sweep", "view_trial"]))
    client.force_login(user)
    return client
