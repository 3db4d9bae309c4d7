"""poolbench's default Locust scenario: closed-loop users hitting the trial's paths with no think time,
or, with ``--rate``, users that send each request when the arrival scheduler says (loadgen/arrivals.py).

Paths come from POOLBENCH_PATHS (JSON [[path, weight], ...]); by default the probe. A non-2xx/3xx
answer is a failure whose message carries the server's error text (X-Poolbench-Error), so pool
exhaustion is recorded as what it is.

Each user sends its requests through geventhttpclient's HTTPClient (the HTTP client under Locust's
FastHttpUser, one keep-alive connection per user) and reports them to Locust's statistics itself. The
FastHttpSession layers above it (a cookie jar, URL parsing and request objects per request, redirects,
the response context manager) cost about a third of Locust's CPU per request here (profiled with py-spy:
docs/benchmarks.md), CPU that the load generator takes from the server on a shared machine; poolbench
needs none of them (the login cookie is a fixed header, redirects are not followed).
"""

import json
import os
import random
import time
from urllib.parse import urlsplit

from geventhttpclient import HTTPClient
from locust import User, constant, task
from locust.exception import CatchResponseError

from poolbench.loadgen import arrivals
from poolbench.wire import ERROR_HEADER, PREFIX

PATHS = json.loads(os.environ.get("POOLBENCH_PATHS") or json.dumps([[f"{PREFIX}probe", 1]]))
COOKIE = os.environ.get("POOLBENCH_COOKIE", "")
_PATHS = [p for p, _ in PATHS]
_WEIGHTS = [w for _, w in PATHS]
_HEADERS = {"Cookie": COOKIE} if COOKIE else None


def failure_message(status: int, headers, body: bytes | None, error) -> str:
    if not status:
        return f"connection error: {error}"
    detail = (headers or {}).get(ERROR_HEADER) if headers else None
    if not detail and body:
        try:
            detail = json.loads(body).get("error")
        except (ValueError, AttributeError):
            detail = None
    return f"HTTP {status}: {detail}" if detail else f"HTTP {status}"


class PoolbenchUser(User):
    wait_time = constant(0)
    connection_timeout = 60.0
    network_timeout = 60.0

    def on_start(self) -> None:
        url = urlsplit(self.host)
        self.http = HTTPClient(
            url.hostname, url.port or (443 if url.scheme == "https" else 80), ssl=url.scheme == "https",
            concurrency=1, connection_timeout=self.connection_timeout, network_timeout=self.network_timeout,
        )  # fmt: skip
        self.report = self.environment.events.request.fire

    def on_stop(self) -> None:
        self.http.close()

    @task
    def page(self) -> None:
        path = _PATHS[0] if len(_PATHS) == 1 else random.choices(_PATHS, _WEIGHTS)[0]
        due = arrivals.take()  # --rate: wait for the next intended send time (None: closed loop)
        # Latency runs from the intended send time in rate mode (coordinated omission), else from now.
        start = due if due is not None else time.perf_counter()
        status, body, response, error = 0, b"", None, None
        # Redirects are not followed: a 3xx is the page's own answer (a login redirect is named by the
        # runner's check before the load), and following it would measure another page under this name.
        try:
            response = self.http.get(path, headers=_HEADERS)
            try:
                body = response.read()
                status = response.status_code
            finally:
                response.release()
        except Exception as exc:  # a connection error or a timeout: recorded as a failure, like Locust does
            error = exc
        elapsed_ms = (time.perf_counter() - start) * 1000
        failure = None
        if not 200 <= status < 400:
            failure = CatchResponseError(failure_message(status, response, body, error))
        self.report(
            request_type="GET", name=path, response_time=elapsed_ms, response_length=len(body),
            exception=failure, context={},
        )  # fmt: skip
