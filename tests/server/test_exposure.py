"""Nothing exposed (issue 8): poolbench's endpoints exist only in the server it starts, listen on
127.0.0.1, the statistics need the run's token, and database passwords go nowhere."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import stat
import tempfile
from pathlib import Path

import psutil
import pytest
from django.test import Client

from poolbench.conf import DEFAULTS
from poolbench.management.commands.poolbench import Command
from poolbench.sweep.options import command_line
from poolbench.sweep.run import trial_config
from poolbench.sweep.server import TrialServer
from poolbench.sweep.targets import redact
from tests.conftest import descendants
from tests.live import (
    LiveManage,
    drop_role,
    own_children_left,
    pg_admin,
    pg_url,
    scratch_database,
    stored_rows,
)

SUFFIX = os.environ.get("POOLBENCH_TEST_SUFFIX", "main")


def test_the_site_itself_has_no_poolbench_endpoints():
    import poolbench.server.wsgi
    from project.wsgi import application

    client = Client()
    for path in ("/__poolbench__/ping", "/__poolbench__/probe", "/__poolbench__/stats"):
        assert client.get(path, HTTP_X_POOLBENCH_TOKEN="anything").status_code == 404, path
    # The site's own WSGI app is Django's, untouched; poolbench's wrapper is only built inside a
    # trial server (it needs the trial file that only `manage.py poolbench` writes). The demo serves its
    # static files with WhiteNoise around it once `make admin` has collected them.
    assert type(application).__name__ in ("WSGIHandler", "WhiteNoise")
    assert type(getattr(application, "application", application)).__name__ == "WSGIHandler"
    assert poolbench.server.wsgi.application is None
    with pytest.raises(RuntimeError, match="is started by `manage.py poolbench` only"):
        poolbench.server.wsgi._load_config()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_trial_server_listens_on_loopback_and_guards_its_statistics():
    # The options the command builds when --bind is not given.
    command = Command()
    opts = vars(
        command.create_parser("manage.py", "poolbench").parse_args(
            ["--sizes", "2", "--workers", "1", "--threads", "4"]
        )
    )
    options = command.build_options(opts)
    assert DEFAULTS["BIND"] == "127.0.0.1" and options.bind == "127.0.0.1"
    token = secrets.token_urlsafe(32)
    state = Path(tempfile.mkdtemp(prefix="poolbench-trial-test-"))
    before = descendants()
    server = TrialServer(
        config=trial_config(options.plan.specs[0], options, token), workers=1, threads=4, state_dir=state,
        bind=options.bind,
    )  # fmt: skip
    try:
        server.start()
        # The database settings (password included) are in a file only this user can read.
        assert stat.S_IMODE((state / "trial.json").stat().st_mode) == 0o600
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        master = psutil.Process(server.proc.pid)
        listening = {
            (c.laddr.ip, c.laddr.port)
            for p in [master, *master.children(recursive=True)]
            for c in p.net_connections("inet")
            if c.status == psutil.CONN_LISTEN
        }
        assert listening == {("127.0.0.1", server.port)}
        # Not reachable on the machine's other addresses.
        others = [
            a.address
            for addrs in psutil.net_if_addrs().values()
            for a in addrs
            if a.family == socket.AF_INET and not a.address.startswith("127.")
        ]
        for address in others:
            with pytest.raises(OSError):
                socket.create_connection((address, server.port), timeout=2).close()

        assert server.request("/__poolbench__/probe")[0] == 200
        for headers in (
            {},
            {"X-Poolbench-Token": ""},
            {"X-Poolbench-Token": "wrong"},
            {"X-Poolbench-Token": token[:-1]},
        ):
            status, body = server.request("/__poolbench__/stats", headers=headers)
            assert (status, json.loads(body)) == (403, {"error": "missing or wrong X-Poolbench-Token"})
        status, body = server.request("/__poolbench__/stats", headers={"X-Poolbench-Token": token})
        assert status == 200 and json.loads(body)["workers"]
        assert server.request("/__poolbench__/nothing")[0] == 404
    finally:
        server.stop()
        shutil.rmtree(state, ignore_errors=True)
    assert own_children_left(before) == []


def test_redact_removes_passwords():
    assert redact("postgres://u:s3cret@h:5432/db and mysql://root:x@y/z", []) == (
        "postgres://u:***@h:5432/db and mysql://root:***@y/z"
    )
    assert redact("dbname=x password=s3cret host=y", []) == "dbname=x password=*** host=y"
    assert redact("PASSWORD='a b' x", []) == "PASSWORD=*** x"
    assert redact("failed for s3cret!", ["s3cret"]) == "failed for ***!"
    assert redact("no secret here", ["s3cret"]) == "no secret here"


def test_command_line_is_stored_without_password(monkeypatch):
    monkeypatch.setattr("sys.argv", ["manage.py", "poolbench", "--path", "http://u:pw-i8@127.0.0.1/x"])
    assert command_line() == "manage.py poolbench --path http://u:***@127.0.0.1/x"


@pytest.mark.postgres
@pytest.mark.slow
def test_database_password_is_never_stored_printed_or_logged(tmp_path):
    role = f"poolbench_{SUFFIX}_pw"
    password = f"Pw-{SUFFIX}-{secrets.token_hex(8)}"
    drop_role(role)
    with pg_admin() as admin:  # the server trusts 127.0.0.1: the password is sent but not needed
        admin.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'")
    try:
        with scratch_database(f"poolbench_{SUFFIX}_pw", owner=role) as name:
            env = {
                "DJANGO_SETTINGS_MODULE": "tests.settings_faults",
                "POOLBENCH_TEST_PG_URL": pg_url(name, user=role, password=password),
                "POOLBENCH_TEST_BROKEN_SIZE": "3",  # trial 2's server fails: its log goes into the row
            }
            migrated = LiveManage("migrate", "-v", "0", env=env, tmpdir=tmp_path)
            assert migrated.finish() == 0, migrated.stderr
            run = LiveManage(
                "poolbench", "--sizes", "2,3", "--duration", "2", "--warmup", "1", "--users", "8",
                "--workers", "1", "--threads", "8", "-v", "2", env=env, tmpdir=tmp_path,
            )  # fmt: skip
            run.wait_for(r"^\[1/2\] pool 2, .*warm-up over, measuring", timeout=120)
            files = {p: p.read_bytes() for p in tmp_path.glob("poolbench-trial*/*") if p.is_file()}
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in files}
            cmdlines = [" ".join(p.cmdline()) for p in run.children()]
            environ_locust = [p.environ() for p in run.children() if "locust" in " ".join(p.cmdline())]
            code = run.finish()
            with pg_admin(name) as db:
                stored = stored_rows(db)
    finally:
        drop_role(role)
    assert code == 0, run.stdout + run.stderr
    # The check can fail: the trial file does hold the password, and only it.
    assert password.encode() in files[next(p for p in files if p.name == "trial.json")]
    assert modes["trial.json"] == 0o600
    assert {"server.log", "locust.log"} <= set(modes)
    leaks = [p.name for p, data in files.items() if password.encode() in data and p.name != "trial.json"]
    assert leaks == []
    assert not any(password in c for c in cmdlines)
    assert environ_locust and not any(password in " ".join(e.values()) for e in environ_locust)
    # Two trials stored (one failed, with its server log), and no column of any row has it.
    assert len(stored) == 3 and '"status":"error"' in stored[2] and "Worker failed to boot" in stored[2]
    assert [row for row in stored if password in row] == []
    assert f"{role}@127.0.0.1" in run.stdout  # the target is described, without the password
    assert password not in run.stdout and password not in run.stderr
    # Nothing of the trials is left on disk.
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("poolbench-trial")] == []


@pytest.mark.django_db
def test_every_poolbench_admin_page_is_staff_only(client):
    """Every URL of poolbench's ModelAdmins (today's and any added later): anonymous users and
    logged-in users who are not staff are sent to the login page."""
    from django.contrib import admin
    from django.contrib.auth.models import User
    from django.urls import reverse

    from tests.sample_sweeps import typical_sweep

    sweep = typical_sweep()
    trial = sweep.trials.first()
    objects = {"sweep": sweep.pk, "trial": trial.pk if trial else 1, "probe": 1}
    urls = []
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label != "poolbench":
            continue
        for pattern in model_admin.get_urls():
            name = getattr(pattern, "name", None)
            if not name:
                continue
            takes_id = "object_id" in str(pattern.pattern)
            args = [objects.get(model._meta.model_name, 1)] if takes_id else []
            urls.append(reverse(f"admin:{name}", args=args))
    assert reverse("admin:poolbench_sweep_changelist") in urls and len(urls) >= 5
    login = reverse("admin:login")
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(login), url
    client.force_login(User.objects.create_user("visitor-i8", password="pw", is_staff=False))
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(login), url
