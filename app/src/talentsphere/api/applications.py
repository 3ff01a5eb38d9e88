"""Applications: apply, my applications, a job's applications (employer), status change, withdraw."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from .. import serialize
from ..db import session
from ..errors import APIError, forbidden, not_found
from ..models import EMPLOYER_STATUSES, TRANSITIONS, Application, ApplicationStatus, Job, JobStatus, Role
from ..security import login_required, roles_required
from ..validation import Field, Query, parse_body
from .common import commit_or_conflict, invalidate_after_application_change, owned_job

bp = Blueprint("applications", __name__)

APPLY = {"cover_letter": Field(str, max_length=10000)}
STATUS_CHANGE = {"status": Field(ApplicationStatus, required=True)}


def _paging() -> tuple[int, int]:
    query = Query()
    page = query.integer("page", 1, 1, 1000) or 1
    per_page = query.integer("per_page", 20, 1, 100) or 20
    query.done()
    return page, per_page


def _load(application_id: int) -> Application:
    application = session().scalar(select(Application).where(Application.id == application_id)
                                   .options(joinedload(Application.job).joinedload(Job.company)))
    if application is None:
        raise not_found("application")
    return application


@bp.post("/jobs/<int:job_id>/applications")
@roles_required(Role.JOB_SEEKER)
def apply(job_id: int) -> tuple[dict[str, Any], int]:
    """Apply to an open job: published and not expired (once per job); nothing is written otherwise.

    A draft is 404 like everywhere else (its existence is not public); a closed or expired job is 409
    ``job_not_open``. The job row is read FOR SHARE, so closing it waits for an application in flight and an
    application after the close sees it closed; expiry is judged by the database clock, as search does.
    """
    values = parse_body(APPLY)
    db = session()
    row = db.execute(select(Job, func.coalesce(Job.expires_at <= func.now(), False))
                     .where(Job.id == job_id).with_for_update(read=True, of=Job)).first()
    if row is None or row[0].status is JobStatus.DRAFT:
        raise not_found("job")
    job, expired = row
    if job.status is not JobStatus.PUBLISHED:
        raise APIError(409, "job_not_open", "this job is closed and takes no applications; find open jobs "
                       "with GET /api/jobs")
    if expired:
        raise APIError(409, "job_not_open", f"this job expired at {job.expires_at.isoformat()} and takes no "
                       "applications; find open jobs with GET /api/jobs")
    application = Application(job_id=job.id, applicant_id=g.user.id, cover_letter=values.get("cover_letter", ""),
                              status=ApplicationStatus.SUBMITTED)
    db.add(application)
    commit_or_conflict(db, "already_applied",
                       "you already applied to this job")
    invalidate_after_application_change(job.company_id)
    return {"application": serialize.application(_load(application.id), job.title)}, 201


@bp.get("/applications")
@roles_required(Role.JOB_SEEKER)
def my_applications() -> dict[str, Any]:
    """The caller's applications, newest first (two statements)."""
    page, per_page = _paging()
    db = session()
    total = db.scalar(select(func.count()).select_from(Application)
                      .where(Application.applicant_id == g.user.id)) or 0
    rows = db.execute(select(Application, Job.title).join(Job, Job.id == Application.job_id)
                      .where(Application.applicant_id == g.user.id)
                      .order_by(Application.created_at.desc(), Application.id.desc())
                      .limit(per_page).offset((page - 1) * per_page)).all()
    return serialize.page([serialize.application(a, title) for a, title in rows], total, page, per_page)


@bp.get("/jobs/<int:job_id>/applications")
@roles_required(Role.EMPLOYER)
def job_applications(job_id: int) -> dict[str, Any]:
    """Applications to one of the employer's jobs (two statements after the ownership check)."""
    page, per_page = _paging()
    query = Query()
    status = query.choice("status", ApplicationStatus)
    query.done()
    db = session()
    job = owned_job(db, job_id, g.user)
    stmt = select(Application).where(Application.job_id == job.id)
    if status:
        stmt = stmt.where(Application.status == status)
    total = db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = db.scalars(stmt.order_by(Application.created_at.desc(), Application.id.desc())
                      .limit(per_page).offset((page - 1) * per_page)).all()
    return serialize.page([serialize.application(a, job.title) for a in rows], total, page, per_page)


@bp.get("/applications/<int:application_id>")
@login_required
def application_detail(application_id: int) -> dict[str, Any]:
    """One application, visible to its applicant and to the employer of the job."""
    application = _load(application_id)
    if g.user.id not in (application.applicant_id, application.job.company.owner_id):
        raise forbidden("this application is not yours")
    return {"application": serialize.application(application, application.job.title)}


def _transition(application: Application, target: ApplicationStatus) -> None:
    allowed = TRANSITIONS[application.status]
    if target not in allowed:
        options = ", ".join(sorted(s.value for s in allowed)) or "none (final state)"
        raise APIError(409, "invalid_transition",
                       f"cannot go from {application.status.value} to {target.value}; allowed: {options}")
    application.status = target
    session().commit()
    invalidate_after_application_change(application.job.company_id)


@bp.patch("/applications/<int:application_id>")
@roles_required(Role.EMPLOYER)
def change_status(application_id: int) -> dict[str, Any]:
    """Move an application of the employer's job through the pipeline (valid transitions only)."""
    values = parse_body(STATUS_CHANGE)
    application = _load(application_id)
    if application.job.company.owner_id != g.user.id:
        raise forbidden("this application is for another company's job")
    if values["status"] not in EMPLOYER_STATUSES:
        allowed = ", ".join(s.value for s in EMPLOYER_STATUSES)
        raise APIError(422, "validation_error", "request parameters are invalid",
                       {"status": f"employers set one of {allowed}"})
    _transition(application, values["status"])
    return {"application": serialize.application(application, application.job.title)}


@bp.post("/applications/<int:application_id>/withdraw")
@roles_required(Role.JOB_SEEKER)
def withdraw(application_id: int) -> dict[str, Any]:
    """The applicant withdraws their application."""
    application = _load(application_id)
    if application.applicant_id != g.user.id:
        raise forbidden("this application is not yours")
    _transition(application, ApplicationStatus.WITHDRAWN)
    return {"application": serialize.application(application, application.job.title)}
