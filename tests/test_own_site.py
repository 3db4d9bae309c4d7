"""poolbench dropped into another Django site, as a user would do it.

``tests/site`` is an independent project ("shop": its own settings module chosen by
DJANGO_SETTINGS_MODULE, a custom WSGI_APPLICATION and middleware, CONN_MAX_AGE=60, ALLOWED_HOSTS
without localhost, DEBUG=False with ManifestStaticFilesStorage and no collectstatic, a books app
whose list page shows rows seeded by a data migration, a page behind login). poolbench is
``pip install``-ed into a venv of its own (not this checkout's), the site is migrated into a
database of its own on the real PostgreSQL, and ``manage.py poolbench`` runs there.

The venv is built once and kept in pytest's cache dir, keyed by pyproject.toml (the dependencies);
poolbench itself is reinstalled from this checkout whenever its source changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SITE = ROOT / "tests" / "site"
SUFFIX = os.environ.get("POOLBENCH_TEST_SUFFIX", "main")
DB_NAME = f"poolbench_site_{SUFFIX}"
ADMIN_DSN = os.environ.get("POOLBENCH_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=root dbname=test")
SHORT = [
    "--duration",
    "2",
    "--warmup",
    "1",
    "--users",
    "8",
    "--workers",
    "1",
    "--threads",
    "8",
    "--repeat",
    "1",
]


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(str(path.relative_to(ROOT)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _pip(venv: Path, *args: str) -> None:
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *args],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="session")
def site_venv(request: pytest.FixtureRequest) -> Path:
    """A venv holding poolbench installed from this checkout with pip (not editable)."""
    # One venv per interpreter: tox runs this suite on several Pythons with one cache directory.
    python = f"py{sys.version_info[0]}{sys.version_info[1]}"
    venv = Path(
        request.config.cache.mkdir(f"poolbench-site-venv-{python}-{_digest([ROOT / 'pyproject.toml'])}")
    )
    sources = [p for p in (ROOT / "poolbench").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    source_key = _digest([*sources, ROOT / "pyproject.toml"])
    marker = venv / "poolbench-source"
    t0 = time.monotonic()
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=120)
        _pip(venv, str(ROOT))
        how = "fresh venv + pip install <checkout>"
    elif not marker.exists() or marker.read_text() != source_key:
        _pip(venv, "--no-deps", "--force-reinstall", str(ROOT))
        how = "pip install --no-deps --force-reinstall <checkout>"
    else:
        how = "cached, source unchanged"
    marker.write_text(source_key)
    print(f"\n[site venv] {how}: {time.monotonic() - t0:.1f}s ({venv})")
    return venv


@pytest.fixture(scope="session")
def site_db():
    """A database of the site's own on the real PostgreSQL, dropped afterwards."""
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    yield DB_NAME
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


def _site_env(venv: Path) -> dict[str, str]:
    drop = {"DJANGO_SETTINGS_MODULE", "PYTHONPATH", "DATABASE_URL", "VIRTUAL_ENV", "PYTHONHOME"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    env["DJANGO_SETTINGS_MODULE"] = "shopsite.settings_live"
    env["SHOP_DB_NAME"] = DB_NAME
    return env


@pytest.fixture(scope="session")
def shop(site_venv, site_db):
    """Run the shop's manage.py with the venv's python, the way its developer would."""

    def manage(
        *args: str, env: dict[str, str] | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(site_venv / "bin" / "python"), "manage.py", *args],
            cwd=SITE,
            env={**_site_env(site_venv), **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    for args in (
        ["migrate", "--noinput"],
        ["createsuperuser", "--noinput", "--username", "alice", "--email", "a@x.example"],
    ):
        result = manage(*args)
        assert result.returncode == 0, result.stdout + result.stderr
    return manage


def _query(sql: str, *params) -> list[tuple]:
    with psycopg.connect(f"host=127.0.0.1 port=5432 user=root dbname={DB_NAME}") as conn:
        return conn.execute(sql, params).fetchall()


def _last_sweep() -> tuple[dict, list[dict]]:
    cols = "id, status, options, load"
    sweep_row = _query(f"SELECT {cols} FROM poolbench_sweep ORDER BY id DESC LIMIT 1")[0]
    sweep = dict(zip(["id", "status", "options", "load"], sweep_row, strict=True))
    names = ["pool_size", "status", "requests", "failures", "rps", "endpoints", "errors", "notes", "db_stats"]
    rows = _query(
        f'SELECT {", ".join(names)} FROM poolbench_trial WHERE sweep_id = %s ORDER BY "index"', sweep["id"]
    )
    return sweep, [dict(zip(names, r, strict=True)) for r in rows]


def _urls_digest() -> str:
    return hashlib.sha256((SITE / "shopsite" / "urls.py").read_bytes()).hexdigest()


def test_installed_like_a_user_would(shop, site_venv):
    """poolbench comes from the venv, the site's URLconf has no poolbench route, and without the trial
    server the site's pages really do break (the controls for the sweeps below)."""
    script = """
import json, poolbench
from django.test import Client
from django.templatetags.static import static
from django.urls import Resolver404, resolve
from poolbench.sweep.site import trial_overrides
out = {"poolbench": poolbench.__file__}
try:
    resolve("/__poolbench__/ping"); out["resolves"] = True
except Resolver404:
    out["resolves"] = False
try:
    static("books/shop.css"); out["static"] = "ok"
except ValueError as exc:
    out["static"] = str(exc)
client = Client(SERVER_NAME="shop.example")
out["client_http"] = client.get("/books/").status_code
out["client_books"] = client.get("/books/", secure=True).status_code
out["overrides"] = sorted(trial_overrides())
print(json.dumps(out))
"""
    result = shop("shell", "-c", script)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["poolbench"].startswith(str(site_venv)), out  # not this checkout's source
    assert out["resolves"] is False
    # The manifest is missing: {% static %} fails in the site's own process...
    assert out["static"] == "Missing staticfiles manifest entry for 'books/shop.css'"
    assert out["overrides"] == ["ssl_redirect", "static_storage"]
    assert out["client_http"] == 301  # SECURE_SSL_REDIRECT: plain HTTP goes to https
    # ...and the books page refuses requests that bypass the shop's WSGI app and middleware.
    assert out["client_books"] == 500
    check = shop("check")
    assert check.returncode == 0 and "System check identified no issues" in check.stdout, check.stderr


def test_sweep_of_the_sites_own_pages(shop, no_stray_children):
    urls_before = _urls_digest()
    result = shop(
        "poolbench",
        "--sizes",
        "2,4",
        "--path",
        "/books/:3",
        "--path",
        "/private/",
        "--login-user",
        "alice",
        *SHORT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = result.stdout
    assert "Logged in as alice: a session in the site's store, removed after the sweep." in text
    assert (
        "In the trial server only: CONN_MAX_AGE=60 of alias 'default' is set to 0 in the pooled trials "
        "(a pool cannot be combined with persistent connections)." in text
    )
    assert "In the trial server only: STORAGES['staticfiles'] uses " in text
    assert "In the trial server only: SECURE_SSL_REDIRECT=True would redirect every request to https" in text
    assert f"/{DB_NAME}" in text and "alias 'default'" in text

    sweep, trials = _last_sweep()
    assert sweep["status"] == "done"
    assert sweep["load"]["paths"] == [["/books/", 3], ["/private/", 1]]
    assert sweep["options"]["login_user"] == "alice"
    assert "cookie" not in json.dumps(sweep["load"]).lower()
    assert [t["pool_size"] for t in trials] == [2, 4]
    for t in trials:
        assert t["status"] == "ok" and t["requests"] > 0 and t["rps"] > 0
        # Every /books/ answer went through the shop's WSGI app and middleware and rendered
        # {% static %} (otherwise 500s, see the controls above); /private/ was logged in (a login
        # redirect would have been reported before the load, see the notes).
        assert t["failures"] == 0, t["errors"]
        pages = {e["name"]: e for e in t["endpoints"]}
        assert set(pages) == {"/books/", "/private/"}
        assert all(e["failures"] == 0 for e in pages.values())
        assert pages["/books/"]["requests"] > 1.5 * pages["/private/"]["requests"] > 0  # weight 3 : 1
        assert any(n.startswith("CONN_MAX_AGE=60 in the site's settings was set to 0") for n in t["notes"])
        assert any("ManifestStaticFilesStorage" in n for n in t["notes"])
        assert not any(n.startswith("GET ") for n in t["notes"]), t["notes"]
        assert 1 <= t["db_stats"]["peak_connections"] <= t["pool_size"]
    # The per-path table shows each page of each trial.
    assert re.search(r"^1\s+pool 2\s+GET /books/\s+\d+\s+0\s+0\.0", text, re.M), text
    assert re.search(r"^2\s+pool 4\s+GET /private/\s+\d+\s+0\s+0\.0", text, re.M), text
    # The site is as it was: same urls.py, and the session made for alice is gone.
    assert _urls_digest() == urls_before
    assert _query("SELECT count(*) FROM django_session") == [(0,)]


def test_own_locustfile_sees_the_sites_app_settings_and_login(shop, no_stray_children):
    """The shop's own scenario fails any answer without its WSGI app's and middleware's headers, the live
    settings flavour, the seeded books, or alice's name on the private page."""
    result = shop(
        "poolbench", "--sizes", "3", "--locustfile", "locustfiles/shopper.py", "--login-user", "alice", *SHORT
    )
    assert result.returncode == 0, result.stdout + result.stderr
    sweep, [trial] = _last_sweep()
    assert sweep["load"]["locustfile"] == str(SITE / "locustfiles" / "shopper.py")
    assert trial["status"] == "ok" and trial["rps"] > 0
    assert trial["failures"] == 0, trial["errors"]
    pages = {e["name"]: e["requests"] for e in trial["endpoints"]}
    assert set(pages) == {"book list", "private page"} and min(pages.values()) > 0


def test_failures_are_reported_by_path(shop, no_stray_children):
    result = shop(
        "poolbench", "--sizes", "2", "--path", "/books/", "--path", "/broken/", "--path", "/private/", *SHORT
    )
    assert result.returncode == 0, result.stdout + result.stderr  # not every request failed
    assert (
        "GET /private/ answered 302 to /accounts/login/?next=/private/ "
        "(a login page? use --login-user NAME): "
        "the trials measure that redirect, not the page" in result.stderr
    )
    assert "GET /broken/ answered 500 before the load: its requests will count as failures" in result.stderr
    sweep, [trial] = _last_sweep()
    pages = {e["name"]: e for e in trial["endpoints"]}
    assert pages["/broken/"]["requests"] > 0
    assert pages["/broken/"]["failures"] == pages["/broken/"]["requests"]
    assert pages["/books/"]["failures"] == 0 and pages["/private/"]["failures"] == 0
    assert trial["failures"] == pages["/broken/"]["failures"]
    assert trial["errors"] == [
        {
            "message": "HTTP 500: RuntimeError: the warehouse is on fire",
            "count": trial["failures"],
            "names": ["/broken/"],
        }
    ]
    row = re.search(
        r"^1\s+pool 2\s+GET /broken/\s+(\d+)\s+(\d+)\s+100\.0\s+\S+\s+HTTP 500: RuntimeError: the warehouse",
        result.stdout,
        re.M,
    )
    assert row and row.group(1) == row.group(2) == str(pages["/broken/"]["requests"]), result.stdout
    assert (
        f"{trial['failures']} x HTTP 500: RuntimeError: the warehouse is on fire (on /broken/)"
        in result.stdout
    )


def test_bad_input_from_the_sites_command_line(shop):
    before = _query("SELECT count(*) FROM poolbench_sweep")
    bad_path = shop("poolbench", "--sizes", "2", "--path", "books/")
    assert bad_path.returncode == 1
    assert bad_path.stderr.strip() == (
        "CommandError: --path 'books/' must start with a single / (a path on your site, not a URL; poolbench "
        "adds the trial server's host), e.g. --path /books/"
    )
    nobody = shop("poolbench", "--sizes", "2", "--path", "/private/", "--login-user", "bob")
    assert nobody.returncode == 1
    assert nobody.stderr.strip() == (
        "CommandError: --login-user bob: no such user (auth.User.username) in the site's database; give an "
        "existing username or create one with `python manage.py createsuperuser`"
    )
    assert _query("SELECT count(*) FROM poolbench_sweep") == before
