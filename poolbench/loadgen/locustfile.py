"""poolbench's default Locust scenario: closed-loop users hitting the trial's paths with no think time,
or, with ``--rate``, users that send each request when the arrival scheduler says (loadgen/arrivals.py).

Paths come from POOLBENCH_PATHS (JSON [[path, weight], ...]); by default the probe. A non-2xx/3xx
answer is a failure whose message carries the server's error text (X-Poolbench-Error), so pool
exhaustion is recorded as what it is.
"""

import json
import os
import random

from locust import FastHttpUser, constant, task

from poolbench.loadgen import arrivals
from poolbench.wire import ERROR_HEADER, PREFIX

PATHS = json.loads(os.environ.get("POOLBENCH_PATHS") or json.dumps([[f"{PREFIX}probe", 1]]))
COOKIE = os.environ.get("POOLBENCH_COOKIE", "")
_PATHS = [p for p, _ in PATHS]
_WEIGHTS = [w for _, w in PATHS]


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


class PoolbenchUser(FastHttpUser):
    wait_time = constant(0)
    connection_timeout = 60.0
    network_timeout = 60.0

    @task
    def page(self) -> None:
        path = _PATHS[0] if len(_PATHS) == 1 else random.choices(_PATHS, _WEIGHTS)[0]
        headers = {"Cookie": COOKIE} if COOKIE else None
        due = arrivals.take()  # --rate: wait for the next intended send time (None: closed loop)
        # Redirects are not followed: a 3xx is the page's own answer (a login redirect is named by the
        # runner's check before the load), and following it would measure another page under this name.
        with self.client.get(
            path, name=path, headers=headers, catch_response=True, allow_redirects=False
        ) as resp:
            arrivals.from_intended(resp, due)
            if not 200 <= (resp.status_code or 0) < 400:
                resp.failure(failure_message(resp.status_code, resp.headers, resp.content, resp.error))
