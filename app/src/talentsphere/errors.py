"""JSON errors with stable codes; no stack trace ever reaches a client."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from sqlalchemy.exc import OperationalError
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

    @app.errorhandler(OperationalError)
    def _database_down(exc: OperationalError) -> Response:
        log.error("database unavailable: %s", exc.orig)
        return _respond(503, "service_unavailable", "the database is unavailable; retry shortly")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return _respond(500, "internal_error", "internal error")
