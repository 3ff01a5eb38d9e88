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
    """The process is up (no dependency checked); ``release`` is the release it serves (null when unknown)."""
    return {"status": "ok", "release": current_app.config["RELEASE_ID"]}


@bp.get("/health/ready")
def ready() -> tuple[dict[str, Any], int]:
    """Ready to serve: PostgreSQL required (503 without), Redis optional (200 "degraded" without).

    While the database circuit breaker is open the answer is an immediate 503 without a connection attempt;
    otherwise the check waits at most DB_CONNECT_TIMEOUT (a new connection) or as long again for the
    pre-ping of a pooled one. ``release`` is the release whose code this process runs (app/README.md,
    Releases), read once when the app was created: a rolling deploy waits for the new id here.
    """
    database = "ok"
    db = current_db()
    if not db.breaker.allow():
        database = "unavailable"
    else:
        try:
            assert db.engine is not None
            with db.engine.connect() as conn:
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
    return {"status": status, "database": database, "redis": redis_state,
            "release": current_app.config["RELEASE_ID"]}, code


@bp.get("/metrics")
def prometheus() -> Response:
    """Prometheus text exposition."""
    body, content_type = metrics.exposition()
    return current_app.response_class(body, mimetype=None, content_type=content_type)
