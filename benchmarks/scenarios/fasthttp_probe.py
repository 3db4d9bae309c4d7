"""The default scenario as it was before: Locust's FastHttpUser (FastHttpSession), with the same
catch_response failure handling. load_cost.py compares the load generator's CPU per request of this,
of poolbench's default scenario and of wrk."""

from locust import FastHttpUser, constant, task


class FastHttpProbeUser(FastHttpUser):
    wait_time = constant(0)
    connection_timeout = 60.0
    network_timeout = 60.0

    @task
    def page(self) -> None:
        path = "/__poolbench__/probe"
        with self.client.get(path, name=path, catch_response=True, allow_redirects=False) as resp:
            if not 200 <= (resp.status_code or 0) < 400:
                resp.failure(f"HTTP {resp.status_code}")
