"""Settings of "shop", a small independent site used to test poolbench as its users would.

It is deliberately unlike poolbench's demo project: its own settings module, a custom
WSGI_APPLICATION and middleware, django.contrib.postgres and a connection_created receiver of its own
that looks its connection up in django.db.connections, DATABASES from a URL (dj-database-url style)
with conn_max_age and extra OPTIONS, ALLOWED_HOSTS without localhost, DEBUG off and
ManifestStaticFilesStorage with no collectstatic run. The live settings (settings_live.py) add the
database; this base module alone points at a database that does not exist.
"""

import os
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = False
SECRET_KEY = "shop-test-not-secret"
ALLOWED_HOSTS = ["shop.example"]
SHOP_FLAVOUR = "base"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "books",
    "poolbench",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "shopsite.middleware.ShopMiddleware",
]

ROOT_URLCONF = "shopsite.urls"
WSGI_APPLICATION = "shopsite.wsgi.shop_application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# The way many sites configure their database: one URL, with persistent connections and extra
# connection OPTIONS in its query string (the books views check that both reach the trial server).
DATABASE_URL = (
    f"postgres://{os.environ.get('SHOP_DB_USER', 'root')}@{os.environ.get('SHOP_DB_HOST', '127.0.0.1')}:"
    f"{os.environ.get('SHOP_DB_PORT', '5432')}/{os.environ.get('SHOP_DB_NAME', 'shop_base_settings_have_no_database')}"
    "?conn_max_age=60&sslmode=disable&options=-c%20search_path%3Dshop,public"
)
DATABASES = {"default": environ.Env.db_url_config(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "collected-static"  # collectstatic is never run for the tests
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
}
