"""JSON errors with stable codes; no stack trace ever reaches a client.

A database that cannot be reached (connection refused or timed out, the connection dropped, the pool
exhausted, the database circuit breaker open) is a JSON 503 ``service_unavailable`` with ``Retry-After``
whichever path raised it. ``JSONErrorMiddleware`` wraps the whole WSGI app so that an exception Flask's
handlers never see (one raised while the request context is torn down) is still a JSON 503/500, never the
server's plain 500 page.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable
from typing import Any

import psycopg2
from flask import Flask, Response, current_app, jsonify
from sqlalchemy.exc import (
    DBAPIError, DisconnectionError, InterfaceError, OperationalError, SQLAlchemyError,
    TimeoutError as PoolTimeoutError,
)
from werkzeug.exceptions import HTTPException

log = logging.getLogger("talentsphere.errors")

# HTTP status -> stable code for errors raised by Flask/Werkzeug itself.
HTTP_CODES: dict[int, str] = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
    409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type", 422: "validation_error",
    429: "rate_limited", 503: "service_unavailable",
}


class APIError(Exception):
    """An error the API reports to the client: HTTP status, stable code, message, optional field details."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


class ValidationError(APIError):
    """One or more fields are invalid (422); ``details`` maps field -> what is wrong and how to fix it."""

    def __init__(self, details: dict[str, str]) -> None:
        super().__init__(422, "validation_error", "request parameters are invalid", details)


DATABASE_DOWN_MESSAGE = "the database is unavailable; retry shortly"


class DatabaseUnavailable(APIError):
    """The database is known to be unreachable (its circuit breaker is open): 503 without trying it."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(503, "service_unavailable", DATABASE_DOWN_MESSAGE)
        self.retry_after = retry_after


class BreakerOpen(psycopg2.OperationalError):
    """Raised by the engine instead of connecting while the breaker is open (SQLAlchemy wraps it as an
    OperationalError, so every path that catches those treats it alike)."""


def is_database_unavailable(exc: BaseException) -> bool:
    """True for errors meaning "PostgreSQL cannot be used right now" (503), as opposed to bugs (500)."""
    if isinstance(exc, DatabaseUnavailable):
        return True
    if isinstance(exc, (OperationalError, InterfaceError, PoolTimeoutError, DisconnectionError)):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError))


def _retry_after(exc: BaseException) -> int:
    """Seconds a client should wait: what is left of the breaker's cooldown (or a whole one), at least 1."""
    if isinstance(exc, DatabaseUnavailable):
        return max(1, math.ceil(exc.retry_after))
    try:
        breaker = getattr(current_app.extensions.get("talentsphere.db"), "breaker", None)
    except RuntimeError:  # outside an app context (the middleware, after teardown)
        breaker = None
    if breaker is None:
        return 1
    return max(1, math.ceil(breaker.retry_after or breaker.interval))


def not_found(what: str) -> APIError:
    """404 for a missing resource."""
    return APIError(404, "not_found", f"{what} not found")


def forbidden(message: str) -> APIError:
    """403 for an authenticated user who may not do this."""
    return APIError(403, "forbidden", message)


def error_body(code: str, message: str, details: dict[str, str] | None = None) -> dict[str, Any]:
    """The one error shape of the API."""
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if details:
        body["error"]["details"] = details
    return body


def _respond(status: int, code: str, message: str, details: dict[str, str] | None = None) -> Response:
    response = jsonify(error_body(code, message, details))
    response.status_code = status
    return response


def register_error_handlers(app: Flask) -> None:
    """Turn every exception into a JSON error."""

    @app.errorhandler(APIError)
    def _api_error(exc: APIError) -> Response:
        return _respond(exc.status, exc.code, exc.message, exc.details)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        response = _respond(status, HTTP_CODES.get(status, "http_error"), exc.description or exc.name)
        if status == 405 and exc.valid_methods:  # type: ignore[attr-defined]
            response.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        return response

    @app.errorhandler(DatabaseUnavailable)
    def _breaker_open(exc: DatabaseUnavailable) -> Response:
        # Not logged per request: the breaker logs once when it opens and once when the database is back.
        return _database_down(exc)

    @app.errorhandler(SQLAlchemyError)
    @app.errorhandler(psycopg2.Error)
    def _database_error(exc: Exception) -> Response:
        if is_database_unavailable(exc):
            orig = getattr(exc, "orig", None) or exc
            if not isinstance(orig, BreakerOpen):  # the breaker logged when it opened
                log.error("database unavailable: %s", str(orig).strip().splitlines()[0] if str(orig).strip()
                          else type(orig).__name__)
            return _database_down(exc)
        return _unexpected(exc)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return _respond(500, "internal_error", "internal error")


def _database_down(exc: BaseException) -> Response:
    response = _respond(503, "service_unavailable", DATABASE_DOWN_MESSAGE)
    response.headers["Retry-After"] = str(_retry_after(exc))
    return response


class JSONErrorMiddleware:
    """The outermost WSGI layer: an exception escaping Flask becomes a JSON error instead of a plain 500.

    Flask's error handlers cover the view and the after-request hooks; an exception raised later, while the
    request context is popped (teardown), reaches the WSGI server, which answers with its own plain-text 500.
    This layer holds back ``start_response`` until the app has returned, so it can still choose the status.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started: list[tuple[Any, ...]] = []
        sent: list[Callable[[bytes], Any]] = []

        def write(data: bytes) -> None:  # the legacy write() callable (Flask never uses it)
            if not sent:
                sent.append(start_response(*started[0]))
            sent[0](data)

        def deferred_start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None):  # noqa: ANN202
            started[:] = [(status, headers, exc_info)]
            return write

        try:
            body = self.app(environ, deferred_start_response)
        except Exception as exc:  # noqa: BLE001 (the last place an error can still be JSON)
            unavailable = is_database_unavailable(exc)
            if unavailable:
                log.exception("database unavailable outside the request handlers: %r", exc)
            else:
                log.exception("unhandled error outside the request handlers")
            status, code, message = ((503, "service_unavailable", DATABASE_DOWN_MESSAGE) if unavailable
                                     else (500, "internal_error", "internal error"))
            payload = json.dumps(error_body(code, message)).encode()
            headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload))),
                       ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff")]
            if unavailable:
                headers.append(("Retry-After", str(_retry_after(exc))))
            # The app's start_response was held back, so nothing was sent yet: no exc_info needed.
            start_response(f"{status} {'SERVICE UNAVAILABLE' if unavailable else 'INTERNAL SERVER ERROR'}",
                           headers)
            return [payload]
        if started and not sent:
            start_response(*started[0])
        return body
