"""Settings for the fault and interruption tests (issue 8), on top of the test settings.

- WSGI_APPLICATION is tests.faulty_wsgi, which refuses to load for the pool size named in
  POOLBENCH_TEST_BROKEN_SIZE (an import error in the site's WSGI app, for that trial only).
- With POOLBENCH_TEST_RESULTS set, results go to that SQLite file and the alias ``target``
  (POOLBENCH_TEST_TARGET_URL) is the database benchmarked, so the target can be taken away
  while the results stay.
"""

from tests.settings import *  # noqa: F403
from tests.settings import env

WSGI_APPLICATION = "tests.faulty_wsgi.application"

if env.str("POOLBENCH_TEST_RESULTS", default=""):
    DATABASES = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": env.str("POOLBENCH_TEST_RESULTS")},
        "target": env.db("POOLBENCH_TEST_TARGET_URL"),
    }
    POOLBENCH = {"MIGRATE": True, "EMBEDDED": False, "REPEAT": 1, "WORKERS": 1}  # as tests/settings.py
