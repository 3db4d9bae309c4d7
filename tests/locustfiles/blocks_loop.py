"""A scenario that blocks Locust's event loop on purpose: twice a second one user busy-waits
BLOCK_MS in pure Python, so no other greenlet (the lag probe included) runs meanwhile. The load
generator's lag must show at least that."""

import time

from locust import FastHttpUser, constant, task

BLOCK_MS = 60
_last = [0.0]


class BlockingUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def probe(self) -> None:
        self.client.get("/__poolbench__/probe")
        now = time.perf_counter()
        if now - _last[0] >= 0.5:
            _last[0] = now
            end = now + BLOCK_MS / 1000
            while time.perf_counter() < end:
                pass
