"""The OpenAPI document: valid, complete, and true of the running app (schemathesis against Gunicorn)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from app_services import free_port
from openapi_spec_validator import validate

from talentsphere.openapi import document
from talentsphere.release import release_id

VENV_BIN = Path(sys.executable).parent
# Bounded for the CI budget (about a minute on 2 cores); raise these locally for a deeper run.
MAX_EXAMPLES = os.environ.get("TS_TEST_SCHEMATHESIS_EXAMPLES", "10")
PHASES = os.environ.get("TS_TEST_SCHEMATHESIS_PHASES", "examples,coverage,fuzzing")
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,"
          "response_headers_conformance")


def test_the_document_is_valid_openapi_3(client) -> None:  # noqa: ANN001
    served = client.get("/api/openapi.json").get_json()
    validate(served)
    assert served == json.loads(json.dumps(document()))


def test_every_route_is_documented_and_every_documented_path_exists(app) -> None:  # noqa: ANN001
    documented = {(path, method.upper()) for path, item in document()["paths"].items() for method in item}
    routed = {(re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method)
              for rule in app.url_map.iter_rules() if rule.endpoint != "static"
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == routed


def _http(method: str, url: str, body: dict | None = None, token: str | None = None) -> dict:
    request = urllib.request.Request(url, method=method, data=json.dumps(body).encode() if body else None,
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {token}"} if token else {})})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def served(prepared, app_env: dict[str, str]) -> Iterator[str]:  # noqa: ANN001
    """The app under Gunicorn (the production WSGI server), in production mode; yields its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [str(VENV_BIN / "gunicorn"), "--workers", "2", "--bind", f"127.0.0.1:{port}", "--timeout", "30",
         "talentsphere.wsgi:app"], env=app_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=1).close()
                break
            except OSError as exc:
                if process.poll() is not None or time.monotonic() > deadline:
                    output = process.stderr.read() if process.stderr else ""
                    raise RuntimeError(f"gunicorn did not start: {output}") from exc
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_gunicorn_serves_the_app_in_production_mode(served: str, app_env: dict[str, str]) -> None:
    # Gunicorn runs from this venv: its release is this venv's RELEASE file, else RENDER_GIT_COMMIT, else null.
    assert _http("GET", f"{served}/health/ready") == {"status": "ok", "database": "ok", "redis": "ok",
                                                      "release": release_id(environ=app_env)}


def test_schemathesis_finds_no_server_error_and_no_contradiction(served: str) -> None:
    # An employer with a company, so authenticated operations reach their real code paths.
    email = f"fuzz-{uuid.uuid4().hex[:10]}@example.com"
    _http("POST", f"{served}/api/auth/register", {"email": email, "password": "fuzzing password",
                                                   "full_name": "Fuzz", "role": "employer"})
    token = _http("POST", f"{served}/api/auth/login", {"email": email, "password": "fuzzing password"})["token"]
    _http("POST", f"{served}/api/companies", {"name": "Fuzz Co", "slug": f"fuzz-{uuid.uuid4().hex[:8]}",
                                              "industry": "Software", "location": "Berlin"}, token)
    with tempfile.TemporaryDirectory() as workdir:
        config = Path(workdir) / "schemathesis.toml"
        # The token reaches schemathesis through the environment, never the command line.
        config.write_text('[auth.openapi.bearerAuth]\nbearer = "${TS_FUZZ_TOKEN}"\n')
        config.chmod(0o600)
        result = subprocess.run(
            [str(VENV_BIN / "schemathesis"), "--config-file", str(config), "run", f"{served}/api/openapi.json",
             "--checks", CHECKS, "--max-examples", MAX_EXAMPLES, "--seed", "20261128",
             # logout-all would revoke the token: every operation after it would stop at the 401.
             "--exclude-path", "/api/auth/logout-all",
             # One worker: hypothesis' lambda introspection is not thread-safe on CPython 3.11 (SystemError).
             "--workers", "1", "--phases", PHASES, "--request-timeout", "10", "--no-color",
             "--generation-database", "none", "--report-dir", workdir],
            env={**os.environ, "TS_FUZZ_TOKEN": token}, capture_output=True, text=True, timeout=300, cwd=workdir)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
