"""TalentSphere job-board backend: ``create_app(config=None)`` builds the Flask app."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

from . import metrics
from .cache import Cache
from .config import load_config
from .db import Database
from .errors import JSONErrorMiddleware, register_error_handlers
from .view_counts import ViewCounter


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: environment config (``config`` overrides it), database, cache, blueprints, errors."""
    from .api import register_blueprints  # the blueprints import models/db; keep package import light

    app = Flask(__name__)
    app.config.from_mapping(load_config(overrides=config))
    app.json.sort_keys = False  # type: ignore[attr-defined]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if app.config["PROXY_COUNT"]:
        count = app.config["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count)  # type: ignore[method-assign]

    database = Database()
    database.init_app(app)
    cache = Cache(app.config["REDIS_URL"], app.config["CACHE_KEY_PREFIX"],
                  socket_timeout=app.config["REDIS_SOCKET_TIMEOUT"],
                  cooldown=app.config["REDIS_BREAKER_COOLDOWN"])
    app.extensions["talentsphere.cache"] = cache
    assert database.engine is not None
    app.extensions["talentsphere.views"] = ViewCounter(cache, database.engine)

    register_error_handlers(app)
    register_blueprints(app)
    _install_request_metrics(app)
    # Outermost: an error raised while a request is torn down is still JSON (errors.JSONErrorMiddleware).
    app.wsgi_app = JSONErrorMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    return app


def _install_request_metrics(app: Flask) -> None:
    """Count requests and time them by endpoint (the route, not the raw path, to bound label values)."""

    @app.before_request
    def _start() -> None:
        g.request_start = time.perf_counter()

    @app.after_request
    def _record(response: Response) -> Response:
        endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics.REQUESTS.labels(request.method, endpoint, str(response.status_code)).inc()
        if "request_start" in g:
            metrics.LATENCY.labels(endpoint).observe(time.perf_counter() - g.request_start)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Cache-Control", "no-store")
        return response
