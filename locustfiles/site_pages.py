"""An example scenario of your own: a user browsing two pages with a little think time.

Run it with ``python manage.py poolbench --locustfile locustfiles/site_pages.py``; poolbench passes the
trial server's address as the host and loads its own plugin beside this file.
"""

from locust import FastHttpUser, between, task


class Browser(FastHttpUser):
    wait_time = between(0.0, 0.01)

    @task(3)
    def probe(self):
        self.client.get("/__poolbench__/probe", name="probe")

    @task(1)
    def admin_login(self):
        self.client.get("/admin/login/", name="admin login")
