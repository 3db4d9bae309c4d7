"""Test settings: the real PostgreSQL and MariaDB on 127.0.0.1, like debug-toolbar's tox factors.

``default`` is PostgreSQL (results and the main target); ``mysql`` is MariaDB/MySQL. Test database
names carry POOLBENCH_TEST_SUFFIX so that parallel checkouts do not share them.
"""

import environ

from project.settings import *  # noqa: F403

env = environ.Env()
_suffix = env.str("POOLBENCH_TEST_SUFFIX", default="main")

DATABASES = {
    "default": env.db("POOLBENCH_TEST_PG_URL", default="postgres://root@127.0.0.1:5432/test"),
    "mysql": env.db("POOLBENCH_TEST_MYSQL_URL", default="mysql://root@127.0.0.1:3306/test"),
}
# Two aliases that only the error tests use: no pool to size, and no server listening.
DATABASES["lite"] = {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
DATABASES["unreachable"] = {
    **DATABASES["default"],
    "HOST": "127.0.0.1",
    "PORT": "1",
    "TEST": {"MIGRATE": False},
}
DATABASES["default"]["TEST"] = {"NAME": f"test_poolbench_{_suffix}"}
DATABASES["mysql"]["TEST"] = {"NAME": f"test_poolbench_{_suffix}", "CHARSET": "utf8mb4"}

# One pass of one worker (x 32 threads, the measured default), as the suite's trial counts and connection
# figures assume; the defaults themselves are tested in tests/sweep/test_defaults.py.
POOLBENCH = {"MIGRATE": False, "EMBEDDED": False, "REPEAT": 1, "WORKERS": 1}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Most PostgreSQL sites have it; its connection_created receiver looks every connection up by alias
# in django.db.connections, so every connection poolbench opens must be registered there.
INSTALLED_APPS = [*INSTALLED_APPS, "django.contrib.postgres"]  # noqa: F405
