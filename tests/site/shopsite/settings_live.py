"""The settings the shop runs with: DJANGO_SETTINGS_MODULE=shopsite.settings_live."""

import os

from .settings import *  # noqa: F403

SHOP_FLAVOUR = "live"
DATABASES["default"]["NAME"] = os.environ["SHOP_DB_NAME"]  # noqa: F405
# Production-style: behind a TLS proxy, plain HTTP is redirected to https.
SECURE_SSL_REDIRECT = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
