from locust import FastHttpUser, constant, task


class Lost(FastHttpUser):
    wait_time = constant(0)

    @task
    def missing(self):
        self.client.get("/no-such-page/")
