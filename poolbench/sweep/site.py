"""What poolbench needs from the site under test: a logged-in session for ``--login-user``, and the
few settings the trial server must change so that the site's pages answer there.

Everything here runs in the command's process. The settings changes themselves are applied by
``poolbench.server.overrides`` in the trial server only: the site's settings files are never touched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from django.conf import settings

from poolbench.wire import OVERRIDE_SSL_REDIRECT, OVERRIDE_STATIC_STORAGE, PLAIN_STATIC_STORAGE


class SiteError(RuntimeError):
    """The site cannot be benchmarked as asked; the message names the fix."""


@dataclass
class LoginSession:
    user: str
    cookie: str  # "sessionid=..." for the Cookie header
    session_key: str
    engine: str

    def delete(self) -> None:
        """Remove the session from the site's store (a no-op for signed-cookie sessions)."""
        store = import_module(self.engine).SessionStore(session_key=self.session_key)
        try:
            store.delete()
        except Exception:  # cleaning up must never hide the sweep's own outcome
            pass


def find_login_user(name: str) -> Any:
    """The active user called ``name`` in the site's database, or SiteError with the fix."""
    from django.apps import apps
    from django.db import DatabaseError

    if not apps.is_installed("django.contrib.auth") or not apps.is_installed("django.contrib.sessions"):
        raise SiteError(
            f"--login-user {name}: needs django.contrib.auth and django.contrib.sessions in INSTALLED_APPS; "
            "write your own scenario with --locustfile to log in another way"
        )
    _check_session_engine(name)
    from django.contrib.auth import get_user_model

    model = get_user_model()
    try:
        user = model._default_manager.get_by_natural_key(name)
    except model.DoesNotExist:
        raise SiteError(
            f"--login-user {name}: no such user ({model._meta.label}.{model.USERNAME_FIELD}) in the site's "
            "database; give an existing username or create one with `python manage.py createsuperuser`"
        ) from None
    except DatabaseError as exc:
        raise SiteError(
            f"--login-user {name}: cannot read the users table ({' '.join(str(exc).split())}); "
            "run `python manage.py migrate` first"
        ) from exc
    if not getattr(user, "is_active", True):
        raise SiteError(
            f"--login-user {name}: the user is not active (is_active=False), so Django would not log it in; "
            "activate it or give another user"
        )
    return user


def _check_session_engine(name: str) -> None:
    engine = settings.SESSION_ENGINE
    if engine.endswith(".cache"):
        backend = settings.CACHES.get(settings.SESSION_CACHE_ALIAS, {}).get("BACKEND", "")
        if backend.endswith(("LocMemCache", "DummyCache")):
            raise SiteError(
                f"--login-user {name}: sessions are kept in the cache '{settings.SESSION_CACHE_ALIAS}' "
                f"({backend}), which the trial server's processes cannot share; use a shared cache "
                "(Redis, Memcached, database) or SESSION_ENGINE 'django.contrib.sessions.backends.cached_db'"
            )


def create_login_session(user: Any, expiry: float) -> LoginSession:
    """Log ``user`` in the way ``django.contrib.auth.login`` does, in the site's own session store.

    The session expires ``expiry`` seconds from now (the sweep's planned length and a margin), not
    after SESSION_COOKIE_AGE: should the sweep be killed before it deletes the session, a valid login
    does not outlive it by much.
    """
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

    engine = settings.SESSION_ENGINE
    store = import_module(engine).SessionStore()
    store[SESSION_KEY] = user._meta.pk.value_to_string(user)
    store[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.set_expiry(max(1, math.ceil(expiry)))
    store.save()
    return LoginSession(
        user=user.get_username(),
        cookie=f"{settings.SESSION_COOKIE_NAME}={store.session_key}",
        session_key=store.session_key,
        engine=engine,
    )


def trial_overrides() -> dict[str, str]:
    """Settings the trial server changes for the site's pages to answer there: {name: why}.

    ``poolbench.server.overrides`` applies each name; the reasons go into the output and every trial's notes.
    """
    overrides: dict[str, str] = {}
    if _manifest_missing():
        backend = settings.STORAGES["staticfiles"]["BACKEND"]
        overrides[OVERRIDE_STATIC_STORAGE] = (
            f"STORAGES['staticfiles'] uses {backend} with DEBUG=False but "
            "its manifest (collectstatic) is missing, so {% static %} would fail: the trial server uses "
            f"{PLAIN_STATIC_STORAGE} instead (static URLs without hashes)"
        )
    if getattr(settings, "SECURE_SSL_REDIRECT", False):
        overrides[OVERRIDE_SSL_REDIRECT] = (
            "SECURE_SSL_REDIRECT=True would redirect every request to https, which the trial server does "
            "not speak: it is off in the trial server"
        )
    return overrides


def _manifest_missing() -> bool:
    if settings.DEBUG:
        return False  # with DEBUG the manifest storage serves plain names and needs no manifest
    params = (getattr(settings, "STORAGES", {}) or {}).get("staticfiles")
    if not params or "BACKEND" not in params:
        return False
    from django.contrib.staticfiles.storage import ManifestFilesMixin
    from django.utils.module_loading import import_string

    try:
        backend = import_string(params["BACKEND"])
    except ImportError:
        return False
    if not (isinstance(backend, type) and issubclass(backend, ManifestFilesMixin)):
        return False
    from django.core.files.storage import storages

    try:
        storage = storages.create_storage(params)  # a fresh instance: the site's own stays untouched
        return not storage.manifest_storage.exists(storage.manifest_name)
    except Exception:  # no STATIC_ROOT, unreadable directory...: no manifest either
        return True
