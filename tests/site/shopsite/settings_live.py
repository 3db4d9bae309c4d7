"""The settings the shop runs with: DJANGO_SETTINGS_MODULE=shopsite.settings_live."""

import os

from .settings import *  # noqa: F403

SHOP_FLAVOUR = "live"
if "SHOP_DB_NAME" not in os.environ:
    raise RuntimeError("the live settings need SHOP_DB_NAME")
# Production-style: behind a TLS proxy, plain HTTP is redirected to https.
SECURE_SSL_REDIRECT = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
