"""A scenario that names each request after the phase it started in, on the clock of the master.

Used to prove that the measured window holds no warm-up request, also when the load comes from Locust
workers whose statistics reach the master late. The master puts its start time in parsed_options, which
Locust hands to every worker with the spawn message (same machine, same clock, in the tests).
Requests within MARGIN of the boundary are 'boundary'.
"""

import time

from locust import FastHttpUser, constant, events, task
from locust.runners import WorkerRunner

MARGIN = 0.3
_clock = {}


@events.test_start.add_listener
def _start(environment, **kwargs):
    options = environment.parsed_options
    if not isinstance(environment.runner, WorkerRunner):
        options.phases_master_start = time.time()
    _clock["start"] = getattr(options, "phases_master_start", None) or time.time()
    _clock["warmup"] = float(getattr(options, "poolbench_warmup", 0) or 0)


class PhaseUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def probe(self) -> None:
        elapsed = time.time() - _clock.get("start", time.time())
        warmup = _clock.get("warmup", 0.0)
        if elapsed < warmup - MARGIN:
            name = "warm-up"
        elif elapsed < warmup + MARGIN:
            name = "boundary"
        else:
            name = "window"
        self.client.get("/__poolbench__/probe", name=name)
