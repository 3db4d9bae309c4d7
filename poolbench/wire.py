"""What the processes of a sweep agree on: the command (orchestrator), the trial server and Locust.

The command writes a trial's config as JSON into the trial's state directory and names the file in
``CONFIG_ENV``; the trial server serves poolbench's endpoints under ``PREFIX`` and reports its
figures there; the Locust plugin drops ``MEASURE_MARK`` into the state directory when the warm-up ends.
Defined once here, imported by each side.
"""

from __future__ import annotations

# The trial server's WSGI entry point (gunicorn's APP_MODULE) and the fork server's module.
SERVER_APP = "poolbench.server.wsgi:application"
FORK_SERVER_MODULE = "poolbench.server.forkserver"

# poolbench's own endpoints in the trial server (never in the site's URLconf).
PREFIX = "/__poolbench__/"
# The environment variable that names the trial's config file (JSON).
CONFIG_ENV = "POOLBENCH_TRIAL_FILE"
# The header that carries the run's secret token to the statistics endpoint.
TOKEN_HEADER = "X-Poolbench-Token"
# The header a failed request's error text travels in, from the trial server to Locust.
ERROR_HEADER = "X-Poolbench-Error"
# Written by the Locust plugin into the trial's state directory when the warm-up ends: each worker
# then starts its timing afresh, so "where the time goes" covers the measured window like Locust's figures.
MEASURE_MARK = "measure-start"
# Seconds between two writes of a worker's statistics: the harness waits this long after the load.
WRITE_INTERVAL = 0.2
# The parts of a request's time the trial server measures (ms per request).
TIMING_PARTS = ("acquire", "db", "app", "total")
# The truthful split of the same time (server/timing.py): queued in the server, waiting inside the pool,
# opening connections, in the database, running Python, waiting for a CPU or the GIL.
SPLIT_PARTS = ("queue", "pool_wait", "connect", "sql", "python", "gil")
# The pool's own counters (psycopg_pool get_stats()) that the window's figures are taken from.
POOL_COUNTERS = (
    "requests_num", "requests_queued", "requests_wait_ms", "requests_errors", "connections_num",
    "connections_ms", "connections_errors", "connections_lost", "usage_ms", "returns_bad",
)  # fmt: skip
# Settings the trial server changes so that the site's pages answer there (see sweep.site).
OVERRIDE_STATIC_STORAGE = "static_storage"
OVERRIDE_SSL_REDIRECT = "ssl_redirect"
PLAIN_STATIC_STORAGE = "django.contrib.staticfiles.storage.StaticFilesStorage"
