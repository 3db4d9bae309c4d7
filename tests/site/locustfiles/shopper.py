"""The shop's own Locust scenario: browse the list, open a book, look at the private page.

It checks what a real shopper would see: the site's own WSGI app and middleware answered (their
headers), with the live settings, the seeded books, and the logged-in user from POOLBENCH_COOKIE.
"""

import os

from locust import FastHttpUser, constant, task

COOKIE = os.environ.get("POOLBENCH_COOKIE", "")


class Shopper(FastHttpUser):
    wait_time = constant(0)

    def _get(self, path, name, must_contain):
        headers = {"Cookie": COOKIE} if COOKIE else None
        with self.client.get(
            path, name=name, headers=headers, catch_response=True, allow_redirects=False
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}")
            elif resp.headers.get("X-Shop-Wsgi") != "shop_application":
                resp.failure("not answered by the shop's WSGI_APPLICATION")
            elif resp.headers.get("X-Shop-Flavour") != "live":
                resp.failure(f"settings flavour {resp.headers.get('X-Shop-Flavour')!r}, not 'live'")
            elif must_contain not in (resp.text or ""):
                resp.failure(f"{must_contain!r} not in the page")

    @task(3)
    def books(self):
        self._get("/books/", "book list", "Moby Lock")

    @task(1)
    def private(self):
        self._get("/private/", "private page", "Hello alice")
