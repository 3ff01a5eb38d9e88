"""Companies: list (industry, verified), create (one per employer), profile by slug with its open jobs."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, g
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from .. import serialize
from ..cache import current_cache, invalidate_cache
from ..db import session
from ..errors import APIError, not_found
from ..models import Company, Job, Role
from ..search import published_jobs
from ..security import roles_required
from ..validation import Field, Query, parse_body
from .common import commit_or_conflict, company_profile_ns

bp = Blueprint("companies", __name__)

PROFILE_JOBS = 50
SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
COMPANY_FIELDS = {
    "name": Field(str, required=True, min_length=2, max_length=200),
    "slug": Field(str, required=True, min_length=2, max_length=100),
    "description": Field(str, max_length=5000),
    "industry": Field(str, required=True, min_length=2, max_length=100),
    "location": Field(str, required=True, min_length=2, max_length=200),
    # An absolute http(s) address, stored normalised (validation.normalize_web_url): profiles render it as
    # a link, so javascript: or data: here would run in every visitor's browser.
    "website": Field("url", max_length=300, nullable=True),
}


@bp.get("/companies")
def list_companies() -> dict[str, Any]:
    """Companies filtered by industry and verification, by name (two statements)."""
    query = Query()
    industry = query.text("industry", 100)
    verified = query.boolean("verified")
    page = query.integer("page", 1, 1, 1000) or 1
    per_page = query.integer("per_page", 20, 1, 100) or 20
    query.done()
    stmt = select(Company)
    if industry:
        stmt = stmt.where(Company.industry == industry)
    if verified is not None:
        stmt = stmt.where(Company.is_verified == verified)
    db = session()
    total = db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = db.scalars(stmt.order_by(Company.name, Company.id).limit(per_page).offset((page - 1) * per_page)).all()
    return serialize.page([serialize.company(c) for c in rows], total, page, per_page)


@bp.post("/companies")
@roles_required(Role.EMPLOYER)
def create_company() -> tuple[dict[str, Any], int]:
    """Create the employer's company (each employer owns one)."""
    values = parse_body(COMPANY_FIELDS)
    if not SLUG_RE.match(values["slug"]):
        raise APIError(422, "validation_error", "request parameters are invalid",
                       {"slug": f"{values['slug']!r} is not a slug; use lower-case letters, digits and hyphens"})
    db = session()
    company = Company(**values, owner_id=g.user.id, is_verified=False)
    db.add(company)
    commit_or_conflict(db, "company_conflict",
                       "you already own a company, or this slug is taken; choose another slug")
    # A lookup of this slug before it existed may have cached "not found".
    invalidate_cache([company_profile_ns(company.slug)])
    return {"company": serialize.company(company)}, 201


@bp.get("/companies/<slug>")
def company_profile(slug: str) -> Response:
    """A company's profile with its newest open jobs (cached 30 minutes)."""
    if not SLUG_RE.match(slug) or len(slug) > 100:
        raise not_found("company")

    def load() -> dict[str, Any] | None:
        db = session()
        company = db.scalar(select(Company).where(Company.slug == slug))
        if company is None:
            return None
        jobs = db.scalars(published_jobs().where(Job.company_id == company.id)
                          .options(joinedload(Job.company), joinedload(Job.category))
                          .order_by(Job.posted_at.desc(), Job.id.desc()).limit(PROFILE_JOBS)).unique().all()
        open_count = db.scalar(select(func.count()).select_from(
            published_jobs().where(Job.company_id == company.id).subquery())) or 0
        return {"company": serialize.company(company), "open_jobs_count": open_count,
                "jobs": [serialize.job(j) for j in jobs]}

    profile = current_cache().get_or_set_response(company_profile_ns(slug), {}, load)
    if profile is None:
        raise not_found("company")
    return profile
