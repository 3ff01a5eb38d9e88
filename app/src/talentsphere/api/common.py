"""Helpers shared by the blueprints: ownership checks and cache invalidation after writes."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from ..cache import invalidate_cache
from ..errors import APIError, forbidden, not_found
from ..models import Company, Job, User


def commit_or_conflict(db: Session, code: str, message: str) -> None:
    """Commit; a unique-constraint violation (a race the pre-checks cannot close) becomes a 409 `code`."""
    try:
        db.commit()
    except IntegrityError:
        db.rollback()
        raise APIError(409, code, message) from None


def company_profile_ns(slug: str) -> str:
    """Cache namespace of one company's profile."""
    return f"company_profile:{slug}"


def dashboard_ns(company_id: int) -> str:
    """Cache namespace of one employer's dashboard."""
    return f"employer_dashboard:{company_id}"


def employer_company(db: Session, user: User) -> Company:
    """The company the employer owns, or a 403 telling them to create it first."""
    company = db.scalar(select(Company).where(Company.owner_id == user.id))
    if company is None:
        raise forbidden("you have no company yet; create it with POST /api/companies")
    return company


def owned_job(db: Session, job_id: int, user: User) -> Job:
    """A job of the user's company (404 if missing, 403 if another company's)."""
    job = db.scalar(select(Job).where(Job.id == job_id)
                    .options(joinedload(Job.company), joinedload(Job.category)))
    if job is None:
        raise not_found("job")
    if job.company.owner_id != user.id:
        raise forbidden("this job belongs to another company")
    return job


def invalidate_after_job_change(company: Company) -> None:
    """A job was created, updated or closed: featured, search, that company's profile and dashboard."""
    invalidate_cache(["jobs_featured", "job_search", company_profile_ns(company.slug), dashboard_ns(company.id)])


def invalidate_after_application_change(company_id: int) -> None:
    """An application changed: that employer's dashboard."""
    invalidate_cache([dashboard_ns(company_id)])
