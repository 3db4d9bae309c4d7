"""A scenario whose users do real CPU work per request (think parsing or signing), so that one Locust
process saturates its core long before the server is busy: the trial must be flagged load-bound."""

import time

from locust import FastHttpUser, constant, task


class CpuHeavyUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def probe(self) -> None:
        self.client.get("/__poolbench__/probe")
        # 10 ms of pure Python per request: gevent cannot run anything else meanwhile.
        end = time.perf_counter() + 0.01
        while time.perf_counter() < end:
            pass
