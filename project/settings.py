"""Settings for the poolbench demo project, read from the environment through django-environ.

With no DATABASE_URL the results live in a SQLite file and `poolbench` benchmarks an embedded
PostgreSQL that it starts and stops itself. With DATABASE_URL=postgres://... or mysql://... that
server is both the benchmark target and where the results are stored.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env(
    DEBUG=(bool, False),
    SECRET_KEY=(str, "poolbench-demo-not-secret"),
    ALLOWED_HOSTS=(list, ["127.0.0.1", "localhost"]),
)
environ.Env.read_env(BASE_DIR / ".env") if (BASE_DIR / ".env").exists() else None

DEBUG = env("DEBUG")
SECRET_KEY = env("SECRET_KEY")
ALLOWED_HOSTS = env("ALLOWED_HOSTS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
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
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

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

_USE = "use postgres://USER@HOST:5432/NAME, mysql://USER@HOST:3306/NAME or sqlite:///PATH"


def _database(url: str) -> dict:
    # Checked here so that a typo gives one line naming the fix, never a traceback; the URL itself
    # is not repeated, as it may hold a password.
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if not scheme:
        raise ImproperlyConfigured(f"DATABASE_URL is not a database URL; {_USE}")
    if scheme not in environ.Env.DB_SCHEMES:
        raise ImproperlyConfigured(f"DATABASE_URL has an unknown scheme {scheme!r}; {_USE}")
    try:
        return environ.Env.db_url_config(url)
    except ValueError:
        # The parser's own message quotes the part of the URL it took for the port, which may be the
        # password: not repeated.
        raise ImproperlyConfigured(
            "DATABASE_URL cannot be parsed: its port is not a number 0-65535, or its password holds a "
            "'/', '?', '#' or '@' that is not percent-encoded (write them %2F, %3F, %23, %40); " + _USE
        ) from None


DATABASES = {
    "default": _database(env.str("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")),
}
if "mysql" in DATABASES["default"]["ENGINE"]:
    # mysqlclient's connection charset is Django's "utf8" (3-byte utf8mb3) unless told otherwise; the
    # stored error texts come from the server and may hold any character. ?charset=... in the URL wins.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("charset", "utf8mb4")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / ".poolbench" / "static"

POOLBENCH = {
    # The demo project may create poolbench's tables on the target itself, so that a plain
    # `DATABASE_URL=... python manage.py poolbench` works on an empty database.
    "MIGRATE": True,
    # With no database server configured, benchmark an embedded PostgreSQL.
    "EMBEDDED": env.bool("POOLBENCH_EMBEDDED", default="sqlite" in DATABASES["default"]["ENGINE"]),
}
if env.str("POOLBENCH_REPEAT", default=""):  # passes of each configuration (default 5)
    POOLBENCH["REPEAT"] = env.int("POOLBENCH_REPEAT")
