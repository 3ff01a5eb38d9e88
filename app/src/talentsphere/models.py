"""The data model (SQLAlchemy 2 typed declarative). Indexes beyond keys and constraints live in indexes.py."""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    Boolean, CheckConstraint, Computed, DateTime, Enum, ForeignKey, Integer, Numeric, String, Text,
    UniqueConstraint, func,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    """Declarative base; naming convention keeps constraint names stable across migrations."""


Base.metadata.naming_convention = {
    "pk": "pk_%(table_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}


class Role(enum.StrEnum):
    """What a user may do."""
    JOB_SEEKER = "job_seeker"
    EMPLOYER = "employer"
    ADMIN = "admin"


class JobStatus(enum.StrEnum):
    """Publication state of a job."""
    DRAFT = "draft"
    PUBLISHED = "published"
    CLOSED = "closed"


class EmploymentType(enum.StrEnum):
    """Kind of contract."""
    FULL_TIME = "full_time"
    PART_TIME = "part_time"
    CONTRACT = "contract"
    INTERNSHIP = "internship"
    TEMPORARY = "temporary"


class ExperienceLevel(enum.StrEnum):
    """Seniority asked for."""
    ENTRY = "entry"
    MID = "mid"
    SENIOR = "senior"
    LEAD = "lead"
    EXECUTIVE = "executive"


class ApplicationStatus(enum.StrEnum):
    """Where an application is in the hiring pipeline."""
    SUBMITTED = "submitted"
    REVIEWING = "reviewing"
    INTERVIEW = "interview"
    OFFERED = "offered"
    HIRED = "hired"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Store the lower-case values (not the Python names) so SQL, the API and the seed speak the same words.
    return Enum(cls, name=name, values_callable=lambda e: [m.value for m in e], validate_strings=True)


class User(Base):
    """A person with an account."""
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    full_name: Mapped[str] = mapped_column(String(120))
    role: Mapped[Role] = mapped_column(_enum(Role, "user_role"))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Signed into every token; bumping it (log out everywhere, password change) revokes all earlier tokens.
    token_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class AuthFailure(Base):
    """Failed logins counted per key ('account:<email>', 'address:<ip>') within a window, and the lockout
    they led to (until ``locked_until``). The primary key is the table's only index: lookups are by key."""
    __tablename__ = "auth_failures"
    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    window_started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Company(Base):
    """An employer organisation, owned by one employer user."""
    __tablename__ = "companies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    industry: Mapped[str] = mapped_column(String(100))
    location: Mapped[str] = mapped_column(String(200))
    website: Mapped[str | None] = mapped_column(String(300))
    is_verified: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    owner: Mapped[User] = relationship(lazy="raise")


class JobCategory(Base):
    """A browseable category of jobs."""
    __tablename__ = "job_categories"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="", server_default="")


class Job(Base):
    """A job posting."""
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint("salary_min IS NULL OR salary_max IS NULL OR salary_min <= salary_max",
                        name="salary_range"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    location: Mapped[str] = mapped_column(String(200))
    employment_type: Mapped[EmploymentType] = mapped_column(_enum(EmploymentType, "employment_type"))
    experience_level: Mapped[ExperienceLevel] = mapped_column(_enum(ExperienceLevel, "experience_level"))
    salary_min: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    salary_max: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    is_remote: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    status: Mapped[JobStatus] = mapped_column(_enum(JobStatus, "job_status"), default=JobStatus.DRAFT)
    is_featured: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    view_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    posted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id", ondelete="CASCADE"))
    category_id: Mapped[int | None] = mapped_column(ForeignKey("job_categories.id", ondelete="SET NULL"))
    posted_by_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                 onupdate=func.now())
    # Maintained by PostgreSQL itself, so bulk loads and the seed never forget to fill it.
    search_vector: Mapped[str] = mapped_column(
        TSVECTOR,
        Computed("setweight(to_tsvector('english', coalesce(title, '')), 'A') || "
                 "setweight(to_tsvector('english', coalesce(description, '')), 'B')", persisted=True),
        deferred=True,
    )
    company: Mapped[Company] = relationship(lazy="raise")
    category: Mapped[JobCategory | None] = relationship(lazy="raise")


class Application(Base):
    """A job seeker's application to one job (one per job and applicant)."""
    __tablename__ = "applications"
    __table_args__ = (UniqueConstraint("job_id", "applicant_id", name="uq_applications_job_applicant"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    applicant_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[ApplicationStatus] = mapped_column(_enum(ApplicationStatus, "application_status"),
                                                      default=ApplicationStatus.SUBMITTED)
    cover_letter: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(),
                                                 onupdate=func.now())
    job: Mapped[Job] = relationship(lazy="raise")
    applicant: Mapped[User] = relationship(lazy="raise")


class SavedJob(Base):
    """A job a user bookmarked."""
    __tablename__ = "saved_jobs"
    __table_args__ = (UniqueConstraint("user_id", "job_id", name="uq_saved_jobs_user_job"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# Valid application status transitions: who moves it is checked in the API (employer vs applicant).
TRANSITIONS: dict[ApplicationStatus, frozenset[ApplicationStatus]] = {
    ApplicationStatus.SUBMITTED: frozenset({ApplicationStatus.REVIEWING, ApplicationStatus.REJECTED,
                                            ApplicationStatus.WITHDRAWN}),
    ApplicationStatus.REVIEWING: frozenset({ApplicationStatus.INTERVIEW, ApplicationStatus.REJECTED,
                                            ApplicationStatus.WITHDRAWN}),
    ApplicationStatus.INTERVIEW: frozenset({ApplicationStatus.OFFERED, ApplicationStatus.REJECTED,
                                            ApplicationStatus.WITHDRAWN}),
    ApplicationStatus.OFFERED: frozenset({ApplicationStatus.HIRED, ApplicationStatus.REJECTED,
                                          ApplicationStatus.WITHDRAWN}),
    ApplicationStatus.HIRED: frozenset(),
    ApplicationStatus.REJECTED: frozenset(),
    ApplicationStatus.WITHDRAWN: frozenset(),
}
# The statuses an employer may set (withdrawing belongs to the applicant; nobody sets "submitted").
EMPLOYER_STATUSES: tuple[ApplicationStatus, ...] = (
    ApplicationStatus.REVIEWING, ApplicationStatus.INTERVIEW, ApplicationStatus.OFFERED, ApplicationStatus.HIRED,
    ApplicationStatus.REJECTED,
)
