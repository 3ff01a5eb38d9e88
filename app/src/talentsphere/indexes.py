"""The app's 38 performance indexes, one line of reason each (created by `talentsphere optimize-db`).

Keys and uniqueness (users.email, companies.slug, companies.owner_id, one application per job and applicant,
one saved job per user and job) are constraints in the migration, not here: data integrity must not
depend on an optimization step. Predicates say ``status = 'published'`` because every public query filters
on it, which keeps these indexes a fraction of the table.
"""

from __future__ import annotations

from dataclasses import dataclass

PUBLISHED = "status = 'published'"


@dataclass(frozen=True)
class IndexSpec:
    """One index: name, table, what follows ``ON table`` (method and keys), optional predicate, reason."""
    name: str
    table: str
    keys: str
    reason: str
    where: str | None = None

    def create_sql(self) -> str:
        """CREATE INDEX CONCURRENTLY IF NOT EXISTS ... (never blocks writes)."""
        predicate = f" WHERE {self.where}" if self.where else ""
        return f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {self.name} ON {self.table} {self.keys}{predicate}"


INDEXES: tuple[IndexSpec, ...] = (
    # Jobs: search filters, featured, sorting, company pages, dashboard.
    IndexSpec("ix_jobs_published_posted", "jobs", "(posted_at DESC, id DESC)",
              "default job list: newest published jobs first, read in index order with LIMIT", PUBLISHED),
    IndexSpec("ix_jobs_featured_posted", "jobs", "(posted_at DESC, id DESC)",
              "featured jobs block: tiny partial index of featured published jobs", f"{PUBLISHED} AND is_featured"),
    IndexSpec("ix_jobs_search_vector", "jobs", "USING gin (search_vector)",
              "full-text search: websearch_to_tsquery @@ search_vector"),
    IndexSpec("ix_jobs_title_trgm", "jobs", "USING gin (title gin_trgm_ops)",
              "substring/fuzzy title matches (autocomplete, typo-tolerant title search)"),
    IndexSpec("ix_jobs_location_trgm", "jobs", "USING gin (location gin_trgm_ops)",
              "location filter: case-insensitive substring (ILIKE '%berlin%')"),
    IndexSpec("ix_jobs_status_updated", "jobs", "(status, updated_at DESC)",
              "jobs by status for back-office lists and moderation, most recently changed first"),
    IndexSpec("ix_jobs_employment_type", "jobs", "(employment_type, posted_at DESC)",
              "employment type filter with newest-first order", PUBLISHED),
    IndexSpec("ix_jobs_experience_level", "jobs", "(experience_level, posted_at DESC)",
              "experience level filter with newest-first order", PUBLISHED),
    IndexSpec("ix_jobs_category_posted", "jobs", "(category_id, posted_at DESC)",
              "category pages: a category's newest published jobs", PUBLISHED),
    IndexSpec("ix_jobs_company_published", "jobs", "(company_id, posted_at DESC, id DESC)",
              "company profile: a company's open jobs newest first", PUBLISHED),
    IndexSpec("ix_jobs_company_status", "jobs", "(company_id, status) INCLUDE (view_count)",
              "employer dashboard: jobs by status and total views as an index-only scan"),
    IndexSpec("ix_jobs_posted_by", "jobs", "(posted_by_id)",
              "foreign key to users: a recruiter's postings and user deletes without a seq scan"),
    IndexSpec("ix_jobs_remote_posted", "jobs", "(posted_at DESC, id DESC)",
              "remote-only filter, newest first", f"{PUBLISHED} AND is_remote"),
    IndexSpec("ix_jobs_salary_range", "jobs", "(salary_max, salary_min)",
              "salary range filter (salary_max >= wanted minimum)", PUBLISHED),
    IndexSpec("ix_jobs_salary_sort", "jobs", "(salary_max DESC NULLS LAST, id DESC)",
              "sort=salary: best paid first without sorting the table", PUBLISHED),
    IndexSpec("ix_jobs_views_sort", "jobs", "(view_count DESC, id DESC)",
              "sort=views: most viewed first", PUBLISHED),
    IndexSpec("ix_jobs_expires_at", "jobs", "(expires_at)",
              "expiry sweeps: published jobs past their expiry date", f"{PUBLISHED} AND expires_at IS NOT NULL"),
    IndexSpec("ix_jobs_type_level_posted", "jobs", "(employment_type, experience_level, posted_at DESC, id DESC)",
              "employment type + experience level filters read newest first: the page without a sort of the "
              "matches (the type-and-level search, with or without q and location)", PUBLISHED),
    IndexSpec("ix_jobs_company_drafts", "jobs", "(company_id, updated_at DESC)",
              "an employer's drafts, most recently edited first", "status = 'draft'"),
    IndexSpec("ix_jobs_created_brin", "jobs", "USING brin (created_at)",
              "time-range reporting and retention on an append-mostly table, a few pages in size"),
    # Applications: by job, by applicant, by status.
    IndexSpec("ix_applications_job_status", "applications", "(job_id, status)",
              "dashboard applications by status and an employer's status filter per job"),
    IndexSpec("ix_applications_job_created", "applications", "(job_id, created_at DESC, id DESC)",
              "a job's applications newest first; dashboard recent applications"),
    IndexSpec("ix_applications_applicant_created", "applications", "(applicant_id, created_at DESC, id DESC)",
              "my applications, newest first"),
    IndexSpec("ix_applications_status", "applications", "(status)",
              "platform-wide pipeline counts by status"),
    IndexSpec("ix_applications_applicant_status", "applications", "(applicant_id, status)",
              "a seeker's active applications (applicant tracking)"),
    IndexSpec("ix_applications_open_updated", "applications", "(status, updated_at)",
              "stale open applications (no employer action for N days)",
              "status IN ('submitted', 'reviewing', 'interview', 'offered')"),
    IndexSpec("ix_applications_created_brin", "applications", "USING brin (created_at)",
              "time-range reporting on applications at a few pages of index"),
    # Users: email lookup, role, active users.
    IndexSpec("ix_users_email_pattern", "users", "(email text_pattern_ops)",
              "admin lookup by email prefix (LIKE 'name@%'); the unique key serves exact login lookups"),
    IndexSpec("ix_users_role_active", "users", "(role)",
              "active users by role (employers, job seekers)", "is_active"),
    IndexSpec("ix_users_active_created", "users", "(created_at DESC)",
              "newest active users", "is_active"),
    IndexSpec("ix_users_name_trgm", "users", "USING gin (full_name gin_trgm_ops)",
              "people search by name, typo tolerant"),
    # Companies: verified, industry, names.
    IndexSpec("ix_companies_verified_name", "companies", "(name, id)",
              "verified companies listed by name", "is_verified"),
    IndexSpec("ix_companies_industry_name", "companies", "(industry, name, id)",
              "industry filter listed by name"),
    IndexSpec("ix_companies_name", "companies", "(name, id)",
              "company directory order (by name) with LIMIT/OFFSET"),
    IndexSpec("ix_companies_name_trgm", "companies", "USING gin (name gin_trgm_ops)",
              "company name search, substring and typo tolerant"),
    IndexSpec("ix_companies_fts", "companies",
              "USING gin (to_tsvector('english', coalesce(name, '') || ' ' || coalesce(description, '')))",
              "full-text search over company names and descriptions"),
    # Saved jobs.
    IndexSpec("ix_saved_jobs_user_created", "saved_jobs", "(user_id, created_at DESC)",
              "a user's saved jobs, newest first"),
    IndexSpec("ix_saved_jobs_job", "saved_jobs", "(job_id)",
              "foreign key to jobs: cascade deletes and 'saved by N users'"),
)

# optimize-db's output, its tests and the verify check ts-pg-indexes all count 38 indexes: change them together.
assert len(INDEXES) == 38 and len({i.name for i in INDEXES}) == 38, "INDEXES must hold 38 distinct indexes"
# Extensions an index above needs; the deploy creates them as superuser.
REQUIRED_EXTENSIONS = ("pg_trgm",)
TABLES = tuple(dict.fromkeys(index.table for index in INDEXES))
