"""Job search: the one place that turns validated filters into SQL (full-text, filters, sort, paging).

Every list runs at most two statements whatever the page size, and neither reads more matches than the page
needs plus a bounded look-ahead, so a list costs about the same at 10k and at 1M jobs:

1. the ids of the matches in the requested order, from the page's first row (offset or cursor) up to
   ``COUNT_PAGES_AHEAD`` pages past the requested one (plus one row): read in index order with a LIMIT, this
   both finds the page and counts the matches without visiting every match;
2. the page's jobs with their company and category (joinedload on many-to-one relations), by primary key.

Totals: ``total`` is exact when the matches end within that window (``total_is_lower_bound`` false);
otherwise ``total`` is a lower bound (there are more matches than ``total``) and ``total_is_lower_bound`` is
true, so ``pages`` is a lower bound too. An exact count over every match was what made a list cost hundreds of
milliseconds at 1M jobs, however small the page.

Paging: ``page`` (OFFSET) for every sort, and ``cursor`` (keyset, from ``next_cursor``) for newest, salary and
views: a cursor continues after the last row of the previous page, at the same cost on page 1,000 as on
page 1, where OFFSET reads and discards every row before the page. Both return the same rows in the same
order for the same data.

Relevance (``sort=relevance``, the API's default with ``q``) ranks a bounded candidate set: the
``RANK_CANDIDATES`` newest matches, ordered by ``ts_rank`` (ties newest first); matches older than those
follow in newest-first order. Where this differs from ranking every match: a match that is not among the
``RANK_CANDIDATES`` newest is listed after all of them, however well it ranks; within the candidates, and
for any search with at most ``RANK_CANDIDATES`` matches, the order is exactly the full ranking's.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, select, tuple_
from sqlalchemy.orm import Session, joinedload

from . import serialize
from .models import Job, JobStatus

SORTS = ["relevance", "newest", "salary", "views"]
# Sorts a cursor can continue: their order is a unique key with an index (relevance is a computed score).
CURSOR_SORTS = ("newest", "salary", "views")
# How far past the requested page the matches are counted: enough for a pager to show the next pages.
COUNT_PAGES_AHEAD = 2
# How many of the newest matches sort=relevance ranks (10 pages of 20).
RANK_CANDIDATES = 200


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
    cursor: str | None = None

    def cursor_problem(self) -> str | None:
        """Why ``cursor`` cannot continue this search (None when there is no cursor or it can)."""
        if self.cursor is None:
            return None
        try:
            decode_cursor(self.cursor, self.sort)
        except CursorError as exc:
            return str(exc)
        return None

    def cache_params(self) -> dict[str, Any]:
        """The filters as a JSON-able dict."""
        return {key: str(value) if isinstance(value, Decimal) else value for key, value in asdict(self).items()}


class CursorError(ValueError):
    """A cursor that is not one of ours, or was made for another sort."""


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


def _order(sort: str) -> list[ColumnElement[Any]]:
    """ORDER BY keys of a sort, each ending in the id so the order is total (relevance: its candidates' order)."""
    if sort == "salary":
        return [Job.salary_max.desc().nulls_last(), Job.id.desc()]
    if sort == "views":
        return [Job.view_count.desc(), Job.id.desc()]
    return [Job.posted_at.desc(), Job.id.desc()]


def _cursor_key(job: Job, sort: str) -> list[Any]:
    if sort == "salary":
        return [None if job.salary_max is None else str(job.salary_max), job.id]
    if sort == "views":
        return [job.view_count, job.id]
    return [job.posted_at.isoformat() if job.posted_at is not None else None, job.id]


def encode_cursor(job: Job, sort: str) -> str:
    """An opaque cursor for the rows after ``job`` in ``sort`` order."""
    raw = json.dumps({"s": sort, "k": _cursor_key(job, sort)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> list[Any]:
    """The sort key a cursor holds, checked against ``sort``; CursorError says what is wrong."""
    if sort not in CURSOR_SORTS:
        raise CursorError(f"sort={sort} pages with page, not cursor; use cursor with sort "
                          f"{', '.join(CURSOR_SORTS)}")
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        made_for, (value, last_id) = data["s"], data["k"]
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise CursorError("not a cursor of this API; pass next_cursor from the previous page unchanged") from None
    if made_for != sort:
        raise CursorError(f"this cursor continues sort={made_for}; ask with sort={made_for} or start again "
                          "without cursor")
    if not isinstance(last_id, int) or isinstance(last_id, bool):
        raise CursorError("not a cursor of this API; pass next_cursor from the previous page unchanged")
    try:
        if sort == "newest":
            value = datetime.fromisoformat(value) if value is not None else None
        elif sort == "salary":
            value = Decimal(value) if value is not None else None
        elif not isinstance(value, int) or isinstance(value, bool):
            raise TypeError
    except (TypeError, ValueError, InvalidOperation):
        raise CursorError("not a cursor of this API; pass next_cursor from the previous page unchanged") from None
    return [value, last_id]


def _after(sort: str, key: list[Any]) -> ColumnElement[bool]:
    """Rows after ``key`` in ``sort`` order: a row comparison the sort's index starts its scan at."""
    value, last_id = key
    if sort == "salary":
        # NULLS LAST: after a priced row come the lower-priced rows, then every row without a salary.
        if value is None:
            return and_(Job.salary_max.is_(None), Job.id < last_id)
        return or_(tuple_(Job.salary_max, Job.id) < tuple_(value, last_id), Job.salary_max.is_(None))
    if sort == "views":
        return tuple_(Job.view_count, Job.id) < tuple_(value, last_id)
    if value is None:
        # Published jobs always have a posting date; a row without one sorts first (DESC) and is never "after".
        return Job.id.is_(None)
    return tuple_(Job.posted_at, Job.id) < tuple_(value, last_id)


def search_jobs(db: Session, filters: JobFilters) -> dict[str, Any]:
    """One page of matching jobs with a total that is exact within a bounded window (two statements)."""
    stmt, rank = build_query(filters)
    relevance = filters.sort == "relevance" and rank is not None
    # Relevance reads its candidates newest first; without q it is the newest order.
    sort = "newest" if filters.sort == "relevance" else filters.sort
    per_page = filters.per_page
    if filters.cursor:
        stmt = stmt.where(_after(sort, decode_cursor(filters.cursor, filters.sort)))
        offset = 0
    else:
        offset = (filters.page - 1) * per_page
    # Rows read: the page, the pages counted ahead, one more to tell "exactly this many" from "more".
    window = offset + per_page * (1 + COUNT_PAGES_AHEAD)
    limit = max(window, RANK_CANDIDATES) + 1 if relevance else window + 1
    columns = [Job.id, rank.label("rank")] if relevance else [Job.id]
    rows = db.execute(stmt.with_only_columns(*columns).order_by(*_order(sort)).limit(limit)).all()
    if relevance:
        candidates = sorted(rows[:RANK_CANDIDATES], key=lambda row: -row.rank)  # stable: ties stay newest first
        rows = candidates + rows[RANK_CANDIDATES:]
    lower_bound = len(rows) == limit
    total = limit - 1 if lower_bound else len(rows)
    page_ids = [row.id for row in rows[offset:offset + per_page]]
    jobs: list[Job] = []
    if page_ids:
        loaded = {job.id: job for job in db.scalars(
            select(Job).where(Job.id.in_(page_ids))
            .options(joinedload(Job.company), joinedload(Job.category))).unique()}
        jobs = [loaded[job_id] for job_id in page_ids if job_id in loaded]
    more = len(rows) > offset + per_page
    next_cursor = encode_cursor(jobs[-1], sort) if more and jobs and filters.sort in CURSOR_SORTS else None
    return serialize.page([serialize.job(j) for j in jobs], total, filters.page, per_page,
                          total_is_lower_bound=lower_bound, next_cursor=next_cursor)


def featured_jobs(db: Session, limit: int) -> list[dict[str, Any]]:
    """The newest featured published jobs (one statement)."""
    stmt = (published_jobs().where(Job.is_featured == True)  # noqa: E712 (renders "= true", which matches the partial index predicate)
            .options(joinedload(Job.company), joinedload(Job.category))
            .order_by(Job.posted_at.desc(), Job.id.desc()).limit(limit))
    return [serialize.job(j) for j in db.scalars(stmt).unique().all()]
