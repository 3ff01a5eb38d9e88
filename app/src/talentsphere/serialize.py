"""Model -> JSON-ready dicts. The OpenAPI schemas in openapi.py describe exactly these shapes."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from .models import Application, Company, Job, JobCategory, User
from .validation import normalize_web_url


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _money(value: Decimal | None) -> float | None:
    return float(value) if value is not None else None


def user(u: User) -> dict[str, Any]:
    """Public view of an account (never the password hash)."""
    return {"id": u.id, "email": u.email, "full_name": u.full_name, "role": u.role.value,
            "is_active": u.is_active, "created_at": _time(u.created_at)}


def company_summary(c: Company) -> dict[str, Any]:
    """What a job listing shows about its company."""
    return {"id": c.id, "name": c.name, "slug": c.slug, "is_verified": c.is_verified}


def website(stored: str | None) -> str | None:
    """A stored website as clients may link it: its normal http(s) form, or None.

    Rows written before the API checked websites (or by SQL) may hold javascript:, data: or malformed
    addresses; they are never emitted, so a client rendering the link cannot be made to run them.
    """
    return normalize_web_url(stored)[0] if stored else None


def company(c: Company) -> dict[str, Any]:
    """A company's full profile."""
    return {**company_summary(c), "description": c.description, "industry": c.industry,
            "location": c.location, "website": website(c.website), "created_at": _time(c.created_at)}


def category(c: JobCategory) -> dict[str, Any]:
    """A job category."""
    return {"id": c.id, "name": c.name, "slug": c.slug, "description": c.description}


def job(j: Job, with_description: bool = False) -> dict[str, Any]:
    """A job; lists omit the long description. Expects company and category loaded."""
    data: dict[str, Any] = {
        "id": j.id, "title": j.title, "location": j.location, "employment_type": j.employment_type.value,
        "experience_level": j.experience_level.value, "salary_min": _money(j.salary_min),
        "salary_max": _money(j.salary_max), "is_remote": j.is_remote, "status": j.status.value,
        "is_featured": j.is_featured, "view_count": j.view_count, "posted_at": _time(j.posted_at),
        "expires_at": _time(j.expires_at), "company": company_summary(j.company),
        "category": category(j.category) if j.category is not None else None,
    }
    if with_description:
        data["description"] = j.description
    return data


def application(a: Application, job_title: str | None = None) -> dict[str, Any]:
    """An application with the job's id and title."""
    return {"id": a.id, "job_id": a.job_id, "job_title": job_title, "applicant_id": a.applicant_id,
            "status": a.status.value, "cover_letter": a.cover_letter, "created_at": _time(a.created_at),
            "updated_at": _time(a.updated_at)}


def page(items: list[dict[str, Any]], total: int, page_number: int, per_page: int, *,
         total_is_lower_bound: bool | None = None, next_cursor: str | None = None) -> dict[str, Any]:
    """The pagination envelope of every list endpoint.

    Job search, which counts its matches only up to a bound, passes ``total_is_lower_bound`` (when true, there
    are more matches than ``total`` and more pages than ``pages``) and ``next_cursor``; other lists count
    exactly and have neither field.
    """
    body = {"items": items, "total": total, "page": page_number, "per_page": per_page,
            "pages": (total + per_page - 1) // per_page}
    if total_is_lower_bound is not None:
        body["total_is_lower_bound"] = total_is_lower_bound
        body["next_cursor"] = next_cursor
    return body
