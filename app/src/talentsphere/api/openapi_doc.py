"""Serves the OpenAPI document."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from ..openapi import document

bp = Blueprint("openapi", __name__)


@bp.get("/openapi.json")
def openapi_json() -> dict[str, Any]:
    """The OpenAPI 3 document of this API."""
    return document()
