"""Rule: a company's website is an absolute http(s) URL with a host, stored normalised; stored values that
are not (rows from before the rule, or written by SQL) are never emitted."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text

from app_helpers import register


def _create(client, website: Any) -> tuple[Any, str]:  # noqa: ANN001, ANN401
    """POST /api/companies with ``website``; the response and the slug asked for (also its industry, so a
    list filtered by it holds only this company)."""
    slug = f"web-{uuid.uuid4().hex[:10]}"
    response = client.post("/api/companies", headers=register(client, "employer").headers, json={
        "name": f"Company {slug}", "slug": slug, "industry": slug, "location": "Berlin", "website": website})
    return response, slug


@pytest.mark.parametrize("website, says", [
    ("javascript:alert(document.cookie)", "javascript"),
    ("JaVaScRiPt:alert(1)", "javascript"),
    ("  javascript:alert(1)", "javascript"),
    ("data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==", "data"),
    ("vbscript:msgbox(1)", "vbscript"),
    ("file:///etc/passwd", "file"),
    ("ftp://example.com/", "ftp"),
    ("example.com", "absolute"),
    ("//example.com/jobs", "absolute"),
    ("https://", "no host"),
    ("https:///jobs", "no host"),
    ("https://user:secret@example.com", "password"),
    ("https://@example.com", "password"),
    ("https://exa mple.com", "whitespace"),
    ("https://example.com/\u202egnp.exe", "control"),
    ("https://example.com/\x07", "control"),
    ("https://good.example\\@evil.example", "\\"),
    ("https://example.com/<script>", "<"),
    ("https://intranet/", "domain name"),
    ("https://example.com:99999/", "port"),
    ("https://example.com/" + "a" * 281, "at most 300"),
    (42, "not a string"),
])
def test_a_website_that_is_not_an_absolute_http_url_is_422_naming_the_field_value_and_fix(
        client, website: Any, says: str) -> None:  # noqa: ANN001, ANN401
    response, slug = _create(client, website)
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert list(error["details"]) == ["website"]
    problem = error["details"]["website"]
    assert says in problem
    if isinstance(website, str):
        assert repr(website.strip())[:20] in problem or repr(website)[:20] in problem  # names the value
    assert "https://example.com" in problem or "remove" in problem or "at most" in problem  # and the fix
    assert client.get(f"/api/companies/{slug}").status_code == 404  # nothing was created


@pytest.mark.parametrize("website, stored", [
    ("https://example.com", "https://example.com"),
    ("HTTPS://Careers.Example.COM:443/Jobs?team=Data#open", "https://careers.example.com/Jobs?team=Data#open"),
    ("http://example.com:80/", "http://example.com/"),
    ("http://example.com:8080/a%20b", "http://example.com:8080/a%20b"),
    ("  https://example.com/  ", "https://example.com/"),
    ("https://bücher.example/über", "https://xn--bcher-kva.example/%C3%BCber"),
    ("http://192.0.2.7/", "http://192.0.2.7/"),
    ("http://[2001:DB8::1]:8443/", "http://[2001:db8::1]:8443/"),
    ("", None),
    (None, None),
])
def test_an_absolute_http_url_is_accepted_and_stored_normalised(client, engine, website: Any,  # noqa: ANN001
                                                                stored: str | None) -> None:  # noqa: ANN401
    response, slug = _create(client, website)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["company"]["website"] == stored
    with engine.connect() as conn:
        assert conn.scalar(text("SELECT website FROM companies WHERE slug = :slug"), {"slug": slug}) == stored
    assert client.get(f"/api/companies/{slug}").get_json()["company"]["website"] == stored


@pytest.mark.parametrize("stored, emitted", [
    ("javascript:alert(document.cookie)", None),
    ("data:text/html,<script>alert(1)</script>", None),
    (" JAVASCRIPT:alert(1)", None),
    ("example.com", None),
    ("https://user:pw@example.com", None),
    ("https://Example.com:443/ok", "https://example.com/ok"),
])
def test_a_stored_website_that_is_not_http_is_never_emitted(client, engine, stored: str,  # noqa: ANN001
                                                            emitted: str | None) -> None:
    response, slug = _create(client, None)
    assert response.status_code == 201, response.get_json()
    with engine.begin() as conn:  # a row from before the rule, or written by SQL
        conn.execute(text("UPDATE companies SET website = :website WHERE slug = :slug"),
                     {"website": stored, "slug": slug})
    assert client.get(f"/api/companies/{slug}").get_json()["company"]["website"] == emitted
    listed = client.get(f"/api/companies?industry={slug}").get_json()["items"]
    assert [company["website"] for company in listed] == [emitted]
