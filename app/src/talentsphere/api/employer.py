"""The employer dashboard: four aggregated statements whatever the company's size (cached 15 minutes)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..cache import current_cache
from ..db import session
from ..models import Application, ApplicationStatus, Job, JobStatus, Role, User
from ..security import roles_required
from .common import dashboard_ns, employer_company

bp = Blueprint("employer", __name__)

TOP_JOBS = 5
RECENT_APPLICATIONS = 10


def dashboard_stats(db: Session, company_id: int) -> dict[str, Any]:
    """Jobs by status + total views, applications by status, top jobs, recent applications."""
    jobs_by_status = {s.value: 0 for s in JobStatus}
    total_views = 0
    for status, count, views in db.execute(
            select(Job.status, func.count(), func.coalesce(func.sum(Job.view_count), 0))
            .where(Job.company_id == company_id).group_by(Job.status)):
        jobs_by_status[status.value] = count
        total_views += int(views)

    applications_by_status = {s.value: 0 for s in ApplicationStatus}
    for status, count in db.execute(
            select(Application.status, func.count()).join(Job, Job.id == Application.job_id)
            .where(Job.company_id == company_id).group_by(Application.status)):
        applications_by_status[status.value] = count

    top_jobs = [{"job_id": job_id, "title": title, "applications": count} for job_id, title, count in db.execute(
        select(Job.id, Job.title, func.count(Application.id).label("n"))
        .join(Application, Application.job_id == Job.id).where(Job.company_id == company_id)
        .group_by(Job.id).order_by(func.count(Application.id).desc(), Job.id).limit(TOP_JOBS))]

    recent = [{"application_id": app_id, "job_id": job_id, "job_title": title, "applicant_name": name,
               "status": status.value, "created_at": created.isoformat()}
              for app_id, job_id, title, name, status, created in db.execute(
                  select(Application.id, Job.id, Job.title, User.full_name, Application.status,
                         Application.created_at)
                  .join(Job, Job.id == Application.job_id).join(User, User.id == Application.applicant_id)
                  .where(Job.company_id == company_id)
                  .order_by(Application.created_at.desc(), Application.id.desc()).limit(RECENT_APPLICATIONS))]

    return {"company_id": company_id, "jobs_by_status": jobs_by_status, "total_views": total_views,
            "applications_by_status": applications_by_status, "top_jobs": top_jobs,
            "recent_applications": recent}


@bp.get("/dashboard")
@roles_required(Role.EMPLOYER)
def dashboard() -> Response:
    """The calling employer's dashboard."""
    db = session()
    company = employer_company(db, g.user)
    return current_cache().get_or_set_response(dashboard_ns(company.id), {},
                                               lambda: dashboard_stats(db, company.id))
