"""In the trial server only, before Django is set up: the settings changes the command asked for."""

from __future__ import annotations

from django.conf import settings

from poolbench.wire import OVERRIDE_SSL_REDIRECT, OVERRIDE_STATIC_STORAGE, PLAIN_STATIC_STORAGE


def apply_overrides(names: list[str]) -> None:
    """Apply :func:`poolbench.sweep.site.trial_overrides` in the trial server, before Django is set up. Never in the command."""
    if OVERRIDE_STATIC_STORAGE in names:
        storages = dict(getattr(settings, "STORAGES", {}) or {})
        storages["staticfiles"] = {"BACKEND": PLAIN_STATIC_STORAGE}
        settings.STORAGES = storages
    if OVERRIDE_SSL_REDIRECT in names:
        settings.SECURE_SSL_REDIRECT = False
