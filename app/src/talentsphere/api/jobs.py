"""Jobs: search/list, featured, detail (counts a view), create, update, close; categories."""

from __future__ import annotations

from datetime import datetime, UTC
from typing import Any

from flask import Blueprint, Response, current_app, g
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, joinedload

from .. import serialize
from ..cache import current_cache
from ..db import session
from ..errors import APIError, ValidationError, not_found
from ..models import Company, EmploymentType, ExperienceLevel, Job, JobCategory, JobStatus, Role
from ..search import SORTS, JobFilters, featured_jobs, search_jobs
from ..security import roles_required
from ..validation import Field, Query, parse_body
from .common import employer_company, invalidate_after_job_change, owned_job

bp = Blueprint("jobs", __name__)

MAX_PER_PAGE = 100
MAX_PAGE = 1000
JOB_FIELDS: dict[str, Field] = {
    "title": Field(str, required=True, min_length=3, max_length=200),
    "description": Field(str, required=True, min_length=10, max_length=20000),
    "location": Field(str, required=True, min_length=2, max_length=200),
    "employment_type": Field(EmploymentType, required=True),
    "experience_level": Field(ExperienceLevel, required=True),
    "salary_min": Field("decimal", nullable=True),
    "salary_max": Field("decimal", nullable=True),
    "is_remote": Field(bool),
    "is_featured": Field(bool),
    "category_id": Field(int, nullable=True),
    "expires_at": Field("datetime", nullable=True),
    # Closing has its own endpoint; a draft is published by setting status to published.
    "status": Field(JobStatus),
}


def _filters() -> JobFilters:
    query = Query()
    q = query.text("q", 200)
    filters = JobFilters(
        q=q,
        location=query.text("location", 100),
        employment_type=query.choice("employment_type", EmploymentType),
        experience_level=query.choice("experience_level", ExperienceLevel),
        category_id=query.integer("category_id", None, 1, 2**31 - 1),
        company_id=query.integer("company_id", None, 1, 2**31 - 1),
        remote=query.boolean("remote"),
        salary_min=query.decimal("salary_min"),
        salary_max=query.decimal("salary_max"),
        sort=query.choice("sort", SORTS, "relevance" if q else "newest") or "newest",
        page=query.integer("page", 1, 1, MAX_PAGE) or 1,
        per_page=query.integer("per_page", 20, 1, MAX_PER_PAGE) or 20,
        cursor=query.text("cursor", 500),
    )
    if "sort" not in query.errors and (problem := filters.cursor_problem()):
        query.errors["cursor"] = problem
    query.done()
    return filters


@bp.get("/jobs")
def list_jobs() -> Response:
    """Search and list published jobs (cached 5 minutes)."""
    filters = _filters()
    return current_cache().get_or_set_response("job_search", filters.cache_params(),
                                               lambda: search_jobs(session(), filters))


@bp.get("/jobs/featured")
def featured() -> Response:
    """Featured published jobs (cached 10 minutes)."""
    query = Query()
    limit = query.integer("limit", 10, 1, 50) or 10
    query.done()
    return current_cache().get_or_set_response("jobs_featured", {"limit": limit},
                                               lambda: {"items": featured_jobs(session(), limit)})


@bp.get("/jobs/<int:job_id>")
def job_detail(job_id: int) -> dict[str, Any]:
    """One published or closed job with its description; counts a view."""
    job = session().scalar(select(Job).where(Job.id == job_id, Job.status != JobStatus.DRAFT)
                           .options(joinedload(Job.company), joinedload(Job.category)))
    if job is None:
        raise not_found("job")
    current_app.extensions["talentsphere.views"].record(job.id)
    return {"job": serialize.job(job, with_description=True)}


def _check_job(values: dict[str, Any], current: Job | None) -> None:
    salary_min = values.get("salary_min", current.salary_min if current else None)
    salary_max = values.get("salary_max", current.salary_max if current else None)
    errors: dict[str, str] = {}
    if salary_min is not None and salary_max is not None and salary_min > salary_max:
        errors["salary_min"] = f"{salary_min} is above salary_max {salary_max}; swap them or lower it"
    if values.get("status") is JobStatus.CLOSED:
        errors["status"] = "use POST /api/jobs/{id}/close to close a job"
    if values.get("category_id") is not None and session().get(JobCategory, values["category_id"]) is None:
        errors["category_id"] = f"{values['category_id']} is not a category; see GET /api/categories"
    expires_at = values.get("expires_at")
    if expires_at is not None and expires_at <= datetime.now(UTC):
        errors["expires_at"] = "is in the past; use a future date-time"
    if errors:
        raise ValidationError(errors)


def _expired(expires_at: datetime | None) -> bool:
    """An expired job is listed nowhere, so it holds no featured place."""
    return expires_at is not None and expires_at <= datetime.now(UTC)


def _check_featuring(db: Session, company: Company, job_id: int | None) -> None:
    """The featuring rule, for a job about to become an open featured one (``job_id``: it, when it exists).

    Featured jobs head every visitor's listing, so the platform vouches for them: only a verified company
    features jobs (403 ``featuring_not_allowed``; verification is the TalentSphere team's decision, outside
    the API), and at most FEATURED_JOBS_PER_COMPANY of its jobs are open featured jobs at once: published or
    draft, not expired (409 ``featured_limit_reached``). Closing, unfeaturing or expiry frees a place.
    """
    if not company.is_verified:
        raise APIError(403, "featuring_not_allowed",
                       f"only verified companies feature jobs, and {company.name} is not verified",
                       {"is_featured": "send false or leave it out; featuring needs your company verified by "
                                       "the TalentSphere team"})
    limit = current_app.config["FEATURED_JOBS_PER_COMPANY"]
    # One featuring request per company at a time, so two cannot both see a free place; NO KEY UPDATE does not
    # block other jobs being inserted for the company (their foreign key takes KEY SHARE).
    db.execute(select(Company.id).where(Company.id == company.id).with_for_update(key_share=True))
    featured = db.scalar(select(func.count()).select_from(Job).where(
        Job.company_id == company.id, Job.is_featured == True, Job.status != JobStatus.CLOSED,  # noqa: E712
        or_(Job.expires_at.is_(None), Job.expires_at > func.now()), Job.id != (job_id or 0))) or 0
    if featured >= limit:
        raise APIError(409, "featured_limit_reached",
                       f"{company.name} has {featured} open featured jobs and the limit is {limit}",
                       {"is_featured": "unfeature (is_featured false) or close one of your featured jobs first, "
                                       "or send false here"})


@bp.post("/jobs")
@roles_required(Role.EMPLOYER)
def create_job() -> tuple[dict[str, Any], int]:
    """Post a job for the employer's company (draft by default)."""
    db = session()
    company = employer_company(db, g.user)
    values = parse_body(JOB_FIELDS)
    _check_job(values, None)
    if values.get("is_featured"):
        _check_featuring(db, company, None)
    status = values.pop("status", JobStatus.DRAFT)
    job = Job(**values, status=status, company_id=company.id, posted_by_id=g.user.id,
              posted_at=datetime.now(UTC) if status is JobStatus.PUBLISHED else None)
    db.add(job)
    db.commit()
    invalidate_after_job_change(company)
    created = db.scalar(select(Job).where(Job.id == job.id)
                        .options(joinedload(Job.company), joinedload(Job.category)))
    return {"job": serialize.job(created, with_description=True)}, 201


@bp.patch("/jobs/<int:job_id>")
@roles_required(Role.EMPLOYER)
def update_job(job_id: int) -> dict[str, Any]:
    """Change fields of one of the employer's jobs."""
    db = session()
    job = owned_job(db, job_id, g.user)
    values = parse_body(JOB_FIELDS, partial=True)
    if job.status is JobStatus.CLOSED:
        raise APIError(409, "job_closed", "a closed job cannot be edited; post a new one")
    _check_job(values, job)
    was_open_featured = job.is_featured and not _expired(job.expires_at)
    if (values.get("is_featured", job.is_featured) and not _expired(values.get("expires_at", job.expires_at))
            and not was_open_featured):
        _check_featuring(db, job.company, job.id)
    for name, value in values.items():
        setattr(job, name, value)
    if job.status is JobStatus.PUBLISHED and job.posted_at is None:
        job.posted_at = datetime.now(UTC)
    db.commit()
    invalidate_after_job_change(job.company)
    return {"job": serialize.job(owned_job(db, job_id, g.user), with_description=True)}


@bp.post("/jobs/<int:job_id>/close")
@roles_required(Role.EMPLOYER)
def close_job(job_id: int) -> dict[str, Any]:
    """Stop accepting applications for one of the employer's jobs."""
    db = session()
    job = owned_job(db, job_id, g.user)
    if job.status is JobStatus.CLOSED:
        raise APIError(409, "job_closed", "this job is already closed")
    job.status = JobStatus.CLOSED
    db.commit()
    invalidate_after_job_change(job.company)
    return {"job": serialize.job(owned_job(db, job_id, g.user), with_description=True)}


@bp.get("/categories")
def categories() -> Response:
    """All job categories (cached 1 hour)."""
    def load() -> list[dict[str, Any]]:
        rows = session().scalars(select(JobCategory).order_by(JobCategory.name)).all()
        return [serialize.category(c) for c in rows]

    return current_cache().get_or_set_response("job_categories", {}, lambda: {"items": load()})
