"""Part 7: realistic users against the lab's lb (headless locust, driven by bench/tsbench/parts/load.py).

Job seekers search (with and without filters), open jobs and apply; employers open their dashboard.
FastHttpUser (geventhttpclient), not HttpUser (requests): locust documents it as the client with less CPU per
request, and locust shares this machine's two cores with the lab. Part 7 records locust's own CPU per step, so a
load generator at its limit would be named as the bottleneck rather than blamed on the stack.
Environment: TSBENCH_CA (lab CA file), TSBENCH_SEEKER_TOKEN and TSBENCH_EMPLOYER_TOKEN (bench accounts'
tokens; environment variables, never command-line arguments).
"""

from __future__ import annotations

import os
import random

import gevent.ssl
from locust import FastHttpUser, between, task

QUERIES = ("developer", "engineer", "data analyst", "designer", "python", "manager", "support", "sales")
CITIES = ("berlin", "london", "paris", "madrid", "toronto")


def verifying_context() -> gevent.ssl.SSLContext:
    """TLS verified against the lab CA (FastHttpUser's default skips verification)."""
    return gevent.ssl.create_default_context(cafile=os.environ["TSBENCH_CA"])


class JobSeeker(FastHttpUser):
    """Searches, reads jobs, applies now and then."""

    weight = 9
    wait_time = between(0.5, 2.0)
    insecure = False
    ssl_context_factory = staticmethod(verifying_context)

    def on_start(self) -> None:
        # One pre-registered seeker for all: registering hashes a password (deliberately slow) and is not
        # what the steady load is about. Repeated applications answer 409, which counts as a success.
        self.job_ids: list[int] = []
        self.auth = {"Authorization": f"Bearer {os.environ['TSBENCH_SEEKER_TOKEN']}"}

    @task(6)
    def search(self) -> None:
        params = {"q": random.choice(QUERIES)}
        if random.random() < 0.5:
            params["location"] = random.choice(CITIES)
        answer = self.client.get("/api/jobs", params=params, name="/api/jobs?q", headers=self.auth)
        if answer.status_code == 200:
            self.job_ids = [job["id"] for job in answer.json()["items"]] or self.job_ids

    @task(2)
    def browse(self) -> None:
        self.client.get("/api/jobs/featured", name="/api/jobs/featured", headers=self.auth)

    @task(4)
    def view(self) -> None:
        if self.job_ids:
            self.client.get(f"/api/jobs/{random.choice(self.job_ids)}", name="/api/jobs/[id]", headers=self.auth)

    @task(1)
    def apply(self) -> None:
        if self.job_ids:
            with self.client.post(f"/api/jobs/{random.choice(self.job_ids)}/applications",
                                  json={"cover_letter": "Load test."}, name="/api/jobs/[id]/applications",
                                  headers=self.auth, catch_response=True) as answer:
                if answer.status_code == 409:  # already applied or closed: a correct answer, not an error
                    answer.success()


class Employer(FastHttpUser):
    """Watches the dashboard."""

    weight = 1
    wait_time = between(1.0, 3.0)
    insecure = False
    ssl_context_factory = staticmethod(verifying_context)

    def on_start(self) -> None:
        self.auth = {"Authorization": f"Bearer {os.environ['TSBENCH_EMPLOYER_TOKEN']}"}

    @task
    def dashboard(self) -> None:
        self.client.get("/api/employer/dashboard", name="/api/employer/dashboard", headers=self.auth)
