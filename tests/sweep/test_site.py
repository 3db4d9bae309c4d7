"""--path, --login-user, the pool-package refusals and the trial overrides that follow the site's settings:
exact messages, before anything runs."""

from __future__ import annotations

import sys

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import override_settings

from poolbench.models import Sweep, Trial
from poolbench.sweep.plan import parse_path, unique_paths
from tests.conftest import assert_refused, descendants

pytestmark = pytest.mark.django_db


def test_parse_paths_with_weights():
    assert unique_paths([parse_path(p) for p in ["/books/:3", "/about/", "/a:b/", "/search/?q=x:2"]]) == [
        ("/books/", 3),
        ("/about/", 1),
        ("/a:b/", 1),
        ("/search/?q=x", 2),
    ]
    assert unique_paths(None) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--path", "books/"],
            "--path 'books/' must start with a single / (a path on your site, not a URL; poolbench adds the "
            "trial server's host), e.g. --path /books/",
        ),
        (
            ["--path", "http://shop.example/books/"],
            "--path 'http://shop.example/books/' must start with a single / (a path on your site, not a URL; "
            "poolbench adds the trial server's host), e.g. --path /books/",
        ),
        (["--path", ""], "--path is empty; give a page of your site, e.g. --path /books/"),
        (
            ["--path", "/books/:0"],
            "--path '/books/:0': weight 0 is not positive; use 1 or more, e.g. --path /books/:3",
        ),
        (
            ["--path", "/books/:x"],
            "--path '/books/:x': weight 'x' is not a whole number; put a positive integer after the last "
            "colon, "
            "e.g. --path /books/:3",
        ),
        (
            ["--path", "/books/:5000"],
            "--path '/books/:5000': weight 5000 is larger than 1000; use 1000 or less",
        ),
        (
            ["--path", "/books/", "--path", "/books/:2"],
            "--path /books/ is given twice; give each path once, with a weight for a larger share, "
            "e.g. --path /books/:3",
        ),
        (
            ["--path", "/a b/"],
            "--path '/a b/' contains white space; percent-encode it (%20), e.g. --path /a%20b/",
        ),
        (
            ["--login-user", "nobody"],
            "--login-user nobody: no such user (auth.User.username) in the site's database; give an existing "
            "username or create one with `python manage.py createsuperuser`",
        ),
    ],
)
def test_bad_site_options_are_refused_before_anything_runs(args, message):
    before = descendants()
    with pytest.raises(CommandError) as info:
        call_command("poolbench", "--sizes", "2", *args)
    assert str(info.value) == message
    assert not Sweep.objects.exists() and not Trial.objects.exists()
    assert descendants() <= before


def test_inactive_login_user_is_refused():
    User.objects.create_user("sleepy", is_active=False)
    with pytest.raises(CommandError) as info:
        call_command("poolbench", "--sizes", "2", "--login-user", "sleepy")
    assert str(info.value) == (
        "--login-user sleepy: the user is not active (is_active=False), so Django would not log it in; "
        "activate it or give another user"
    )


@override_settings(
    SESSION_ENGINE="django.contrib.sessions.backends.cache",
    CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
)
def test_login_user_with_per_process_session_cache_is_refused():
    User.objects.create_user("alice")
    assert_refused(
        ["--sizes", "2", "--login-user", "alice"],
        "--login-user alice: sessions are kept in the cache 'default' "
        "(django.core.cache.backends.locmem.LocMemCache), which the trial server's processes cannot share; "
        "use a shared cache (Redis, Memcached, database) or SESSION_ENGINE "
        "'django.contrib.sessions.backends.cached_db'",
    )


# The "missing package" cases below make the import really fail: a module set to None in
# sys.modules cannot be imported (ImportError) and importlib finds no spec for it.


def test_sweep_refused_when_psycopg_pool_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg_pool", None)
    with pytest.raises(ImportError):
        import psycopg_pool  # noqa: F401
    assert_refused(
        ["--sizes", "2"],
        "--mode pool on PostgreSQL needs the psycopg pool package (psycopg_pool), which is not installed; "
        "pip install 'psycopg[pool]', or choose another --mode",
    )


def test_sweep_refused_when_mysql_pool_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "dj_db_conn_pool", None)
    assert_refused(
        ["--sizes", "2", "--database", "mysql"],
        "--mode queuepool on MySQL/MariaDB needs django-db-connection-pool (dj_db_conn_pool), which is not "
        "installed; pip install 'poolbench[mysql]' (or pip install django-db-connection-pool), or choose "
        "another --mode",
    )


MANIFEST_STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
}


def test_trial_overrides_follow_the_sites_settings(tmp_path):
    from poolbench.sweep.site import trial_overrides

    with override_settings(DEBUG=False, STORAGES=MANIFEST_STORAGES, STATIC_ROOT=str(tmp_path)):
        assert list(trial_overrides()) == ["static_storage"]  # no manifest: collectstatic never ran
        (tmp_path / "staticfiles.json").write_text('{"paths": {}, "version": "1.1", "hash": "x"}')
        assert trial_overrides() == {}  # collected: the site's own storage is kept
    with override_settings(DEBUG=True, STORAGES=MANIFEST_STORAGES, STATIC_ROOT=str(tmp_path / "none")):
        assert trial_overrides() == {}  # with DEBUG the manifest storage needs no manifest
    with override_settings(SECURE_SSL_REDIRECT=True):
        assert list(trial_overrides()) == ["ssl_redirect"]


@pytest.mark.parametrize(
    ("age", "modes", "said"),
    [(None, ["pool"], True), (60, ["queuepool"], True), (0, ["pool"], False), (60, ["persistent"], False)],
)
def test_conn_max_age_change_is_said_for_pooled_trials_only(age, modes, said):
    from poolbench.sweep.load import LoadSettings
    from poolbench.sweep.plan import build_plan
    from poolbench.sweep.run import SweepOptions, site_changes
    from poolbench.sweep.targets import Target

    options = SweepOptions(
        plan=build_plan(sizes=[2], modes=modes, workers=[1], threads=[4]),
        target=Target(alias="default", database={"CONN_MAX_AGE": age}, vendor="postgresql"),
        load=LoadSettings(users=1, spawn_rate=0, duration=1, warmup=0),
    )
    expected = (
        f"CONN_MAX_AGE={age} of alias 'default' is set to 0 in the pooled trials "
        "(a pool cannot be combined with persistent connections)"
    )
    assert site_changes(options) == ([expected] if said else [])
