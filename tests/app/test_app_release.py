"""The release a process serves: its RELEASE file, else RENDER_GIT_COMMIT, else null; read once at app creation
and reported by /health and /health/ready (app/README.md, Releases)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from app_helpers import app_config
from openapi_spec_validator import validate

from talentsphere import create_app
from talentsphere.openapi import document
from talentsphere.release import release_id


def _release(root: Path, name: str, content: str | None = None) -> Path:
    directory = root / "releases" / name
    (directory / "bin").mkdir(parents=True)
    if content is not None:
        (directory / "RELEASE").write_text(content)
    return directory


def _point_current(root: Path, target: Path) -> Path:
    """Switch the `current` symlink atomically, as the deploy does (rename over the old link)."""
    link, staged = root / "current", root / "current.new"
    staged.symlink_to(target)
    staged.replace(link)
    return link


def test_the_release_file_of_the_resolved_prefix_wins(tmp_path: Path) -> None:
    first = _release(tmp_path, "20261201-1200-abc1234", "20261201-1200-abc1234\n")
    current = _point_current(tmp_path, first)
    assert release_id(current, environ={"RENDER_GIT_COMMIT": "deadbeef"}) == "20261201-1200-abc1234"


def test_render_git_commit_when_there_is_no_release_file(tmp_path: Path) -> None:
    assert release_id(tmp_path, environ={"RENDER_GIT_COMMIT": " 0123abcd \n"}) == "0123abcd"
    empty = _release(tmp_path, "empty", "\n")
    assert release_id(empty, environ={"RENDER_GIT_COMMIT": "0123abcd"}) == "0123abcd"


def test_null_when_neither_is_there(tmp_path: Path) -> None:
    assert release_id(tmp_path, environ={}) is None
    assert release_id(tmp_path, environ={"RENDER_GIT_COMMIT": ""}) is None


def test_only_the_first_line_counts(tmp_path: Path) -> None:
    directory = _release(tmp_path, "r1", "r1\ninstalled by tsdeploy\n")
    assert release_id(directory, environ={}) == "r1"


def test_the_id_is_read_once_when_the_app_is_created(tmp_path: Path, app_env: dict[str, str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = _release(tmp_path, "r-old", "r-old\n"), _release(tmp_path, "r-new", "r-new\n")
    # A worker started from /opt/talentsphere/current/bin/gunicorn has that unresolved path as sys.prefix.
    monkeypatch.setattr(sys, "prefix", str(_point_current(tmp_path, old)))
    monkeypatch.delenv("RENDER_GIT_COMMIT", raising=False)
    serving_old = create_app(app_config(app_env))
    try:
        assert serving_old.test_client().get("/health").get_json() == {"status": "ok", "release": "r-old"}
        # The deploy switches `current`: this process still runs the old code and keeps saying so ...
        _point_current(tmp_path, new)
        assert serving_old.test_client().get("/health").get_json()["release"] == "r-old"
        # ... while a process started now (the new code) reports the new release.
        serving_new = create_app(app_config(app_env))
        try:
            assert serving_new.test_client().get("/health").get_json()["release"] == "r-new"
        finally:
            serving_new.extensions["talentsphere.db"].engine.dispose()
    finally:
        serving_old.extensions["talentsphere.db"].engine.dispose()


def test_ready_reports_the_release_with_the_checks(app_env: dict[str, str]) -> None:
    application = create_app(app_config(app_env, RELEASE_ID="20261201-1200-abc1234"))
    try:
        response = application.test_client().get("/health/ready")
        assert response.status_code == 200
        assert response.get_json() == {"status": "ok", "database": "ok", "redis": "ok",
                                       "release": "20261201-1200-abc1234"}
    finally:
        application.extensions["talentsphere.db"].engine.dispose()


def test_ready_reports_the_release_also_when_unavailable(app_env: dict[str, str]) -> None:
    application = create_app(app_config(app_env, RELEASE_ID="r7",
                                        DATABASE_URL="postgresql://nobody@127.0.0.1:1/none"))
    try:
        response = application.test_client().get("/health/ready")
        assert response.status_code == 503
        assert response.get_json()["release"] == "r7"
    finally:
        application.extensions["talentsphere.db"].engine.dispose()


def test_an_unknown_release_is_null_in_both_answers(app_env: dict[str, str]) -> None:
    application = create_app(app_config(app_env, RELEASE_ID=None))
    try:
        client = application.test_client()
        assert client.get("/health").get_json() == {"status": "ok", "release": None}
        assert client.get("/health/ready").get_json()["release"] is None
    finally:
        application.extensions["talentsphere.db"].engine.dispose()


def test_the_openapi_document_describes_the_release_field() -> None:
    spec = document()
    validate(spec)
    ready = spec["components"]["schemas"]["Ready"]
    liveness = spec["paths"]["/health"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    for schema in (ready, liveness):
        assert schema["properties"]["release"] == {**schema["properties"]["release"], "type": "string",
                                                   "nullable": True}
        assert "release" in schema["required"]
