"""Data the parts measure on: reseeding the app's tables at a size, and a bench employer with applications."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .settings import BENCH_HOSTS

if TYPE_CHECKING:  # the report imports the parts, and with them this module, without the lab
    from .hosts import BenchLab
    from .http import Client

APP_TABLES = "saved_jobs, applications, jobs, companies, job_categories, users"
# The bench company's own jobs: applications to them are spread over (job, seeker) pairs, unique by design.
EMPLOYER_JOBS = 1000


def current_jobs(lab: BenchLab) -> int:
    """Seeded jobs (the bench employer's own jobs, of companies named bench-*, are not counted)."""
    return int(lab.psql("SELECT count(*) FROM jobs j JOIN companies c ON c.id = j.company_id "
                        "WHERE c.slug NOT LIKE 'bench-%';").strip())


def reseed(lab: BenchLab, jobs: int) -> dict[str, float]:
    """Empty the app's tables and seed `jobs` jobs with the app's own `talentsphere seed`, then ANALYZE.

    Returns the row counts and the seconds taken. The cache is cleared by restarting Redis (its entries
    describe the old rows).
    """
    started = time.monotonic()
    lab.psql(f"TRUNCATE {APP_TABLES} RESTART IDENTITY CASCADE;")
    lab.talentsphere("seed", "--jobs", str(jobs), "--seed", "42")
    lab.talentsphere("optimize-db")
    lab.ssh(BENCH_HOSTS["cache"], "sudo systemctl restart redis-server")
    counts = lab.psql("SELECT (SELECT count(*) FROM jobs), (SELECT count(*) FROM applications), "
                      "(SELECT count(*) FROM users), (SELECT count(*) FROM companies);").strip().split("|")
    return {"jobs": int(counts[0]), "applications": int(counts[1]), "users": int(counts[2]),
            "companies": int(counts[3]), "seconds": round(time.monotonic() - started, 1)}


@dataclass
class Employer:
    """A registered employer with a company, its jobs and a token (for /api/dashboard)."""

    token: str
    user_id: int
    company_id: int
    slug: str


def make_employer(lab: BenchLab, client: Client) -> Employer:
    """Register an employer through the API, create its company, and give it EMPLOYER_JOBS published jobs."""
    tag = secrets.token_hex(4)
    password = secrets.token_urlsafe(16)
    email = f"bench-{tag}@example.test"
    # Registration answers 202 without a token (it must not tell whether the email had an account): log in.
    client.request("POST", "/api/auth/register", {"email": email, "password": password,
                                                  "full_name": "Bench Employer", "role": "employer"}, expect=(202,))
    registered = client.request("POST", "/api/auth/login", {"email": email, "password": password})
    token = registered["token"]
    company = client.request("POST", "/api/companies", {"name": f"Bench Company {tag}", "slug": f"bench-{tag}",
                                                        "industry": "Software", "location": "Berlin"},
                             token=token)["company"]
    lab.psql(
        "INSERT INTO jobs (title, description, location, employment_type, experience_level, salary_min, salary_max, "
        "is_remote, status, is_featured, view_count, posted_at, expires_at, company_id, category_id, posted_by_id) "
        "SELECT 'Bench Engineer ' || g, 'A benchmark job for the employer dashboard, number ' || g || '.', "
        "'Berlin', 'full_time', 'mid', 50000, 70000, g % 4 = 0, "
        "(CASE WHEN g % 10 = 0 THEN 'closed' ELSE 'published' END)::job_status, false, g % 97, "
        "now() - make_interval(mins => g), now() + interval '60 days', "
        f"{int(company['id'])}, (SELECT min(id) FROM job_categories), {int(registered['user']['id'])} "
        f"FROM generate_series(1, {EMPLOYER_JOBS}) AS g;")
    return Employer(token=token, user_id=int(registered["user"]["id"]), company_id=int(company["id"]),
                    slug=company["slug"])


def grow_applications(lab: BenchLab, employer: Employer, total: int) -> int:
    """Add applications to the employer's jobs until it has `total` (one per job and seeker); returns the count."""
    lab.psql(
        "WITH j AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS r FROM jobs "
        f"WHERE company_id = {employer.company_id} AND status = 'published'), "
        "s AS (SELECT id, row_number() OVER (ORDER BY id) - 1 AS r FROM users WHERE role = 'job_seeker'), "
        "n AS (SELECT count(*) AS jobs FROM j), "
        f"have AS (SELECT count(*) AS c FROM applications a JOIN jobs x ON x.id = a.job_id "
        f"WHERE x.company_id = {employer.company_id}) "
        "INSERT INTO applications (job_id, applicant_id, status, cover_letter, created_at, updated_at) "
        "SELECT j.id, s.id, (ARRAY['submitted','reviewing','interview','offered','hired','rejected'])[1 + g % 6]"
        "::application_status, 'Benchmark application.', now() - make_interval(secs => g), now() "
        f"FROM have, n, generate_series((SELECT c FROM have), {int(total)} - 1) AS g "
        "JOIN j ON true JOIN s ON true WHERE j.r = g % n.jobs AND s.r = g / n.jobs "
        "ON CONFLICT DO NOTHING; ANALYZE applications;")
    have = lab.psql("SELECT count(*) FROM applications a JOIN jobs x ON x.id = a.job_id "
                    f"WHERE x.company_id = {employer.company_id};")
    return int(have.strip())
