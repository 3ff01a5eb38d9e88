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
    """Jobs by status + total views, applications by status, top jobs, recent applications.

    The application figures are computed per job first (a LATERAL subquery on the job's index entries), then
    combined over the company's jobs: no statement sorts or joins every application of the company, so
    none needs more memory (or temp files) as the company grows. Only the figures travel: 7 status counts
    per job, one count per job, the 10 newest applications per job.
    """
    from sqlalchemy import true  # ON TRUE: a LATERAL subquery is correlated with the job row, not joined on keys
    jobs_by_status = {s.value: 0 for s in JobStatus}
    total_views = 0
    for status, count, views in db.execute(
            select(Job.status, func.count(), func.coalesce(func.sum(Job.view_count), 0))
            .where(Job.company_id == company_id).group_by(Job.status)):
        jobs_by_status[status.value] = count
        total_views += int(views)

    # Per job, (job_id, status) index order gives the status groups already sorted: no sort of the rows.
    per_job = (select(Application.status.label("status"), func.count().label("n"))
               .where(Application.job_id == Job.id).group_by(Application.status).lateral("per_job"))
    applications_by_status = {s.value: 0 for s in ApplicationStatus}
    for status, count in db.execute(
            select(per_job.c.status, func.sum(per_job.c.n)).select_from(Job).join(per_job, true())
            .where(Job.company_id == company_id).group_by(per_job.c.status)):
        applications_by_status[status.value] = int(count)

    counts = select(func.count().label("n")).where(Application.job_id == Job.id).lateral("counts")
    top_jobs = [{"job_id": job_id, "title": title, "applications": count} for job_id, title, count in db.execute(
        select(Job.id, Job.title, counts.c.n).select_from(Job).join(counts, true())
        .where(Job.company_id == company_id, counts.c.n > 0)
        .order_by(counts.c.n.desc(), Job.id).limit(TOP_JOBS))]

    # The newest applications of each job (index order, LIMIT), the newest of those, then their applicants.
    latest = (select(Application.id, Application.applicant_id, Application.status, Application.created_at)
              .where(Application.job_id == Job.id)
              .order_by(Application.created_at.desc(), Application.id.desc()).limit(RECENT_APPLICATIONS)
              .lateral("latest"))
    newest = (select(latest.c.id, Job.id.label("job_id"), Job.title, latest.c.applicant_id, latest.c.status,
                     latest.c.created_at)
              .select_from(Job).join(latest, true()).where(Job.company_id == company_id)
              .order_by(latest.c.created_at.desc(), latest.c.id.desc()).limit(RECENT_APPLICATIONS).subquery())
    recent = [{"application_id": app_id, "job_id": job_id, "job_title": title, "applicant_name": name,
               "status": status.value, "created_at": created.isoformat()}
              for app_id, job_id, title, name, status, created in db.execute(
                  select(newest.c.id, newest.c.job_id, newest.c.title, User.full_name, newest.c.status,
                         newest.c.created_at)
                  .join(User, User.id == newest.c.applicant_id)
                  .order_by(newest.c.created_at.desc(), newest.c.id.desc()))]

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
