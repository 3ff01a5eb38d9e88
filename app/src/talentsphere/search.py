"""Job search: the one place that turns validated filters into SQL (full-text, filters, sort, paging).

Every list runs exactly two statements whatever the page size: a count and a page with the company and
category joined in (joinedload on many-to-one relations).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session, joinedload

from . import serialize
from .models import Job, JobStatus

SORTS = ["relevance", "newest", "salary", "views"]


@dataclass(frozen=True)
class JobFilters:
    """Validated search parameters (also the cache key)."""
    q: str | None = None
    location: str | None = None
    employment_type: str | None = None
    experience_level: str | None = None
    category_id: int | None = None
    company_id: int | None = None
    remote: bool | None = None
    salary_min: Decimal | None = None
    salary_max: Decimal | None = None
    sort: str = "newest"
    page: int = 1
    per_page: int = 20

    def cache_params(self) -> dict[str, Any]:
        """The filters as a JSON-able dict."""
        return {key: str(value) if isinstance(value, Decimal) else value for key, value in asdict(self).items()}


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def published_jobs() -> Select[tuple[Job]]:
    """Published, unexpired jobs."""
    return select(Job).where(Job.status == JobStatus.PUBLISHED,
                             or_(Job.expires_at.is_(None), Job.expires_at > func.now()))


def build_query(filters: JobFilters) -> tuple[Select[tuple[Job]], Any]:
    """The filtered statement and the rank expression (None without ``q``)."""
    stmt = published_jobs()
    rank = None
    if filters.q:
        tsquery = func.websearch_to_tsquery("english", filters.q)
        stmt = stmt.where(Job.search_vector.op("@@")(tsquery))
        rank = func.ts_rank(Job.search_vector, tsquery)
    if filters.location:
        stmt = stmt.where(Job.location.ilike(f"%{_escape_like(filters.location)}%", escape="\\"))
    if filters.employment_type:
        stmt = stmt.where(Job.employment_type == filters.employment_type)
    if filters.experience_level:
        stmt = stmt.where(Job.experience_level == filters.experience_level)
    if filters.category_id is not None:
        stmt = stmt.where(Job.category_id == filters.category_id)
    if filters.company_id is not None:
        stmt = stmt.where(Job.company_id == filters.company_id)
    if filters.remote is not None:
        stmt = stmt.where(Job.is_remote == filters.remote)
    if filters.salary_min is not None:
        stmt = stmt.where(Job.salary_max >= filters.salary_min)
    if filters.salary_max is not None:
        stmt = stmt.where(Job.salary_min <= filters.salary_max)
    return stmt, rank


def _ordered(stmt: Select[tuple[Job]], sort: str, rank: Any) -> Select[tuple[Job]]:
    if sort == "relevance" and rank is not None:
        return stmt.order_by(rank.desc(), Job.posted_at.desc(), Job.id.desc())
    if sort == "salary":
        return stmt.order_by(Job.salary_max.desc().nulls_last(), Job.id.desc())
    if sort == "views":
        return stmt.order_by(Job.view_count.desc(), Job.id.desc())
    return stmt.order_by(Job.posted_at.desc(), Job.id.desc())


def search_jobs(db: Session, filters: JobFilters) -> dict[str, Any]:
    """One page of matching jobs with the total count (two statements)."""
    stmt, rank = build_query(filters)
    total = db.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    page_stmt = (_ordered(stmt, filters.sort, rank)
                 .options(joinedload(Job.company), joinedload(Job.category))
                 .limit(filters.per_page).offset((filters.page - 1) * filters.per_page))
    jobs = db.scalars(page_stmt).unique().all()
    return serialize.page([serialize.job(j) for j in jobs], total, filters.page, filters.per_page)


def featured_jobs(db: Session, limit: int) -> list[dict[str, Any]]:
    """The newest featured published jobs (one statement)."""
    stmt = (published_jobs().where(Job.is_featured == True)  # noqa: E712 (renders "= true", which matches the partial index predicate)
            .options(joinedload(Job.company), joinedload(Job.category))
            .order_by(Job.posted_at.desc(), Job.id.desc()).limit(limit))
    return [serialize.job(j) for j in db.scalars(stmt).unique().all()]
