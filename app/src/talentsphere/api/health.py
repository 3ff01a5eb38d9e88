"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from .. import metrics
from ..cache import current_cache
from ..db import current_db

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> dict[str, Any]:
    """The process is up (no dependency checked)."""
    return {"status": "ok"}


@bp.get("/health/ready")
def ready() -> tuple[dict[str, Any], int]:
    """Ready to serve: PostgreSQL required (503 without), Redis optional (200 "degraded" without)."""
    database = "ok"
    try:
        engine = current_db().engine
        assert engine is not None
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError:
        database = "unavailable"
    redis_state = "ok" if current_cache().is_available else "unavailable"
    if database != "ok":
        status, code = "unavailable", 503
    elif redis_state != "ok":
        status, code = "degraded", 200
    else:
        status, code = "ok", 200
    return {"status": status, "database": database, "redis": redis_state}, code


@bp.get("/metrics")
def prometheus() -> Response:
    """Prometheus text exposition."""
    body, content_type = metrics.exposition()
    return current_app.response_class(body, mimetype=None, content_type=content_type)
