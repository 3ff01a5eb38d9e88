"""`talentsphere seed --jobs N --seed S`: deterministic, realistic data, generated inside PostgreSQL.

Each table is one INSERT ... SELECT over generate_series, so 1M jobs take minutes, not hours. Values are
picked with ``hashint8extended(row, seed + salt)``, a pure function: the same N and S give the same rows
(dates are relative to the time of seeding). Seeded accounts get an unusable password hash: nobody can log
in as them; register real accounts through the API.

Sizes follow the number of jobs: one company (and employer) per 200 jobs, one job seeker per 10 jobs,
half an application per job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Engine, text

CATEGORIES = ("Engineering", "Data Science", "Design", "Product", "Marketing", "Sales", "Customer Support",
              "Finance", "Human Resources", "Operations", "Legal", "Healthcare")
CITIES = ("Berlin", "London", "New York", "San Francisco", "Toronto", "Amsterdam", "Paris", "Madrid",
          "Lisbon", "Warsaw", "Stockholm", "Austin", "Seattle", "Singapore", "Sydney", "Dublin")
INDUSTRIES = ("Software", "Finance", "Healthcare", "Retail", "Education", "Logistics", "Media", "Energy")
ADJECTIVES = ("Senior", "Junior", "Lead", "Principal", "Staff", "Associate", "Remote", "Freelance")
ROLES = ("Python Developer", "Backend Engineer", "Data Analyst", "Product Designer", "DevOps Engineer",
         "Account Executive", "Marketing Manager", "Support Specialist", "Financial Analyst", "Recruiter",
         "Machine Learning Engineer", "Frontend Developer", "Site Reliability Engineer", "Project Manager",
         "QA Engineer", "Database Administrator")
SKILLS = ("PostgreSQL", "Redis", "Flask", "Kubernetes", "React", "SQL", "Excel", "Figma", "Terraform",
          "customer empathy", "negotiation", "statistics", "Linux", "Go", "TypeScript", "Salesforce")
# Weighted choices: most jobs are full time, most applications are still early in the pipeline.
EMPLOYMENT_MIX = ("full_time", "full_time", "full_time", "part_time", "contract", "internship", "temporary")
APPLICATION_MIX = ("submitted", "submitted", "reviewing", "interview", "offered", "hired", "rejected", "withdrawn")
# Unusable by design: werkzeug's check_password_hash never accepts it, so seeded accounts cannot log in.
NO_LOGIN_HASH = "!seeded-account-no-login"


def _array(values: tuple[str, ...]) -> str:
    quoted = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
    return f"ARRAY[{quoted}]"


def _pick(values: tuple[str, ...], row: str, salt: int) -> str:
    """SQL picking one of ``values`` for ``row`` deterministically."""
    return f"({_array(values)})[1 + (abs(hashint8extended({row}, :seed + {salt})) % {len(values)})]"


def _rand(row: str, salt: int, modulus: int) -> str:
    """SQL for a deterministic integer in [0, modulus) for ``row``."""
    return f"(abs(hashint8extended({row}, :seed + {salt})) % {modulus})"


@dataclass
class SeedReport:
    """Rows written and time taken."""
    skipped: bool
    jobs: int = 0
    companies: int = 0
    users: int = 0
    applications: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        """One line for humans."""
        if self.skipped:
            return "database already has jobs; seed skipped (use a fresh database to reseed)"
        return (f"seeded {self.jobs} jobs, {self.companies} companies, {self.users} users, "
                f"{self.applications} applications in {self.seconds:.1f}s")


def seed(engine: Engine, jobs: int, seed_value: int) -> SeedReport:
    """Fill an empty database with ``jobs`` jobs and proportional companies, users and applications."""
    if jobs < 1:
        raise ValueError(f"--jobs {jobs} must be at least 1")
    started = time.perf_counter()
    companies = max(5, jobs // 200)
    seekers = max(20, jobs // 10)
    applications = jobs // 2
    params = {"seed": seed_value, "jobs": jobs, "companies": companies, "seekers": seekers,
              "applications": applications}
    with engine.begin() as conn:
        # One seeding at a time, and none on a database that already has jobs (keeps deploys idempotent).
        conn.execute(text("LOCK TABLE jobs IN EXCLUSIVE MODE"))
        if conn.scalar(text("SELECT EXISTS (SELECT 1 FROM jobs)")):
            return SeedReport(skipped=True)
        base = conn.execute(text("SELECT coalesce(max(id), 0) FROM users")).scalar_one()
        params["base"] = base
        conn.execute(text(
            "INSERT INTO job_categories (name, slug, description) SELECT c, lower(replace(c, ' ', '-')), "
            "c || ' roles' FROM unnest(CAST(:names AS text[])) AS c ON CONFLICT DO NOTHING"),
            {"names": list(CATEGORIES)})
        # Employers are users base+1 .. base+companies; job seekers follow.
        conn.execute(text(
            "INSERT INTO users (id, email, password_hash, full_name, role, is_active, created_at) "
            "SELECT :base + g, 'seed' || (:base + g) || '@example.test', :hash, "
            f"{_pick(('Alex', 'Sam', 'Maria', 'Chen', 'Priya', 'Omar', 'Lena', 'Jonas'), 'g', 1)} || ' ' || "
            f"{_pick(('Smith', 'Garcia', 'Kowalski', 'Nguyen', 'Okafor', 'Schmidt', 'Rossi', 'Khan'), 'g', 2)}, "
            "CASE WHEN g <= :companies THEN 'employer' ELSE 'job_seeker' END::user_role, "
            f"{_rand('g', 3, 50)} <> 0, now() - make_interval(days => {_rand('g', 4, 720)}::int) "
            "FROM generate_series(1, :companies + :seekers) AS g"), {**params, "hash": NO_LOGIN_HASH})
        conn.execute(text("SELECT setval(pg_get_serial_sequence('users', 'id'), (SELECT max(id) FROM users))"))
        conn.execute(text(
            "INSERT INTO companies (name, slug, description, industry, location, website, is_verified, owner_id) "
            f"SELECT {_pick(('Acme', 'Globex', 'Initech', 'Umbrella', 'Stark', 'Wayne', 'Hooli', 'Vandelay'), 'g', 5)}"
            " || ' ' || "
            f"{_pick(('Labs', 'Systems', 'Group', 'Analytics', 'Works', 'Digital'), 'g', 6)} || ' ' || (:base + g), "
            "'company-' || (:base + g), 'We build things people use.', "
            f"{_pick(INDUSTRIES, 'g', 7)}, {_pick(CITIES, 'g', 8)}, "
            "'https://company-' || (:base + g) || '.example.test', "
            f"{_rand('g', 9, 3)} = 0, :base + g FROM generate_series(1, :companies) AS g"), params)
        company0 = conn.execute(text("SELECT min(id) FROM companies WHERE owner_id > :base"), params).scalar_one()
        category_ids = list(conn.scalars(text("SELECT id FROM job_categories ORDER BY id")))
        status = _rand("g", 14, 100)
        # k picks the company; company ids and owner ids were assigned in the same generate_series order.
        conn.execute(text(
            "INSERT INTO jobs (title, description, location, employment_type, experience_level, salary_min, "
            "salary_max, is_remote, status, is_featured, view_count, posted_at, expires_at, company_id, "
            "category_id, posted_by_id) "
            f"SELECT {_pick(ADJECTIVES, 'g', 10)} || ' ' || {_pick(ROLES, 'g', 11)}, "
            f"'We are looking for a ' || {_pick(ROLES, 'g', 11)} || ' with experience in ' || "
            f"{_pick(SKILLS, 'g', 12)} || ' and ' || {_pick(SKILLS, 'g', 13)} || "
            "'. You will work with a friendly team, own your projects and grow with us.', "
            f"{_pick(CITIES, 'g', 15)}, "
            f"{_pick(EMPLOYMENT_MIX, 'g', 16)}::employment_type, "
            f"{_pick(('entry', 'mid', 'mid', 'senior', 'senior', 'lead', 'executive'), 'g', 17)}::experience_level, "
            f"30000 + {_rand('g', 18, 90)} * 1000, 30000 + {_rand('g', 18, 90)} * 1000 + {_rand('g', 19, 60)} * 1000, "
            f"{_rand('g', 20, 5)} = 0, "
            f"CASE WHEN {status} < 85 THEN 'published' WHEN {status} < 95 THEN 'closed' ELSE 'draft' END::job_status, "
            f"{_rand('g', 21, 50)} = 0, {_rand('g', 22, 5000)}, "
            f"CASE WHEN {status} < 95 THEN now() - make_interval(mins => {_rand('g', 23, 129600)}::int) END, "
            f"now() + make_interval(days => 30 + {_rand('g', 24, 90)}::int), "
            ":company0 + k, "
            f"(CAST(:categories AS int[]))[1 + {_rand('g', 26, len(category_ids))}], "
            ":base + 1 + k "
            f"FROM (SELECT g, {_rand('g', 25, companies)} AS k FROM generate_series(1, :jobs) AS g) AS s"),
            {**params, "company0": company0, "categories": category_ids})
        seeker0 = base + companies
        conn.execute(text(
            "INSERT INTO applications (job_id, applicant_id, status, cover_letter, created_at, updated_at) "
            f"SELECT j.id, :seeker0 + 1 + {_rand('g', 27, seekers)}, "
            f"{_pick(APPLICATION_MIX, 'g', 28)}::application_status, 'I would love to join your team.', "
            f"j.posted_at + make_interval(hours => 1 + {_rand('g', 29, 500)}::int), now() "
            "FROM generate_series(1, :applications) AS g "
            f"JOIN jobs j ON j.id = (SELECT min(id) FROM jobs) + {_rand('g', 30, jobs)} "
            "WHERE j.status <> 'draft' ON CONFLICT DO NOTHING"), {**params, "seeker0": seeker0})
        written = conn.execute(text("SELECT count(*) FROM applications")).scalar_one()
    return SeedReport(skipped=False, jobs=jobs, companies=companies, users=companies + seekers,
                      applications=written, seconds=time.perf_counter() - started)
