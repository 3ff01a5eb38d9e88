"""Part 7: realistic users against the lab's lb (headless locust, driven by bench/tsbench/parts/load.py).

Job seekers search (with and without filters), open jobs and apply; employers open their dashboard.
Environment: TSBENCH_CA (lab CA file), TSBENCH_EMPLOYER_TOKEN (a bench employer's token; an environment
variable, never a command-line argument).
"""

from __future__ import annotations

import os
import random
import secrets

from locust import HttpUser, between, task

QUERIES = ("developer", "engineer", "data analyst", "designer", "python", "manager", "support", "sales")
CITIES = ("berlin", "london", "paris", "madrid", "toronto")


class JobSeeker(HttpUser):
    """Searches, reads jobs, applies now and then."""

    weight = 9
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        self.client.verify = os.environ["TSBENCH_CA"]
        self.job_ids: list[int] = []
        answer = self.client.post("/api/register", json={
            "email": f"seeker-{secrets.token_hex(6)}@example.test", "password": secrets.token_urlsafe(12),
            "full_name": "Load Seeker", "role": "job_seeker"}, name="/api/register")
        self.client.headers["Authorization"] = f"Bearer {answer.json()['token']}"

    @task(6)
    def search(self) -> None:
        params = {"q": random.choice(QUERIES)}
        if random.random() < 0.5:
            params["location"] = random.choice(CITIES)
        answer = self.client.get("/api/jobs", params=params, name="/api/jobs?q")
        if answer.ok:
            self.job_ids = [job["id"] for job in answer.json()["items"]] or self.job_ids

    @task(2)
    def browse(self) -> None:
        self.client.get("/api/jobs/featured", name="/api/jobs/featured")

    @task(4)
    def view(self) -> None:
        if self.job_ids:
            self.client.get(f"/api/jobs/{random.choice(self.job_ids)}", name="/api/jobs/[id]")

    @task(1)
    def apply(self) -> None:
        if self.job_ids:
            with self.client.post(f"/api/jobs/{random.choice(self.job_ids)}/applications",
                                  json={"cover_letter": "Load test."}, name="/api/jobs/[id]/applications",
                                  catch_response=True) as answer:
                if answer.status_code == 409:  # already applied or closed: a correct answer, not an error
                    answer.success()


class Employer(HttpUser):
    """Watches the dashboard."""

    weight = 1
    wait_time = between(1.0, 3.0)

    def on_start(self) -> None:
        self.client.verify = os.environ["TSBENCH_CA"]
        self.client.headers["Authorization"] = f"Bearer {os.environ['TSBENCH_EMPLOYER_TOKEN']}"

    @task
    def dashboard(self) -> None:
        self.client.get("/api/dashboard", name="/api/dashboard")
