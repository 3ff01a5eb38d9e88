"""The JSON API blueprints, registered in one place."""

from __future__ import annotations

from flask import Flask

from . import applications, auth, companies, employer, health, jobs, openapi_doc


def register_blueprints(app: Flask) -> None:
    """Mount every feature blueprint under its prefix."""
    app.register_blueprint(health.bp)
    app.register_blueprint(openapi_doc.bp, url_prefix="/api")
    app.register_blueprint(auth.bp, url_prefix="/api/auth")
    app.register_blueprint(jobs.bp, url_prefix="/api")
    app.register_blueprint(companies.bp, url_prefix="/api")
    app.register_blueprint(applications.bp, url_prefix="/api")
    app.register_blueprint(employer.bp, url_prefix="/api/employer")
