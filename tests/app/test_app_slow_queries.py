"""Statements slower than SLOW_QUERY_THRESHOLD are logged with their duration and counted."""

from __future__ import annotations

import logging

import pytest
from app_helpers import app_config
from prometheus_client import REGISTRY

from talentsphere import create_app


def _slow_total() -> float:
    return REGISTRY.get_sample_value("talentsphere_slow_queries_total") or 0.0


@pytest.fixture
def app_logging_everything_as_slow(prepared, app_env):  # noqa: ANN001, ANN201
    """The app with a zero threshold: every statement counts as slow."""
    application = create_app(app_config(app_env, SLOW_QUERY_THRESHOLD=0.0))
    yield application
    application.extensions["talentsphere.db"].engine.dispose()


def test_slow_statements_are_logged_and_counted(app_logging_everything_as_slow, caplog) -> None:  # noqa: ANN001
    client = app_logging_everything_as_slow.test_client()
    app_logging_everything_as_slow.extensions["talentsphere.cache"].clear_all()
    before = _slow_total()
    with caplog.at_level(logging.WARNING, logger="talentsphere.sql"):
        assert client.get("/api/jobs/featured?limit=3").status_code == 200
    assert _slow_total() - before >= 1
    messages = [record.getMessage() for record in caplog.records if record.name == "talentsphere.sql"]
    assert any(message.startswith("slow query ") and "SELECT jobs.id" in message for message in messages)


def test_fast_statements_are_not_logged(client, caplog) -> None:  # noqa: ANN001
    before = _slow_total()
    with caplog.at_level(logging.WARNING, logger="talentsphere.sql"):
        assert client.get("/api/categories").status_code == 200
    assert _slow_total() == before
    assert not [record for record in caplog.records if record.name == "talentsphere.sql"]
