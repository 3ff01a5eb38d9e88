"""The OpenAPI 3.0 document of the API, written by hand next to the code it describes.

Tests validate it with openapi-spec-validator and run schemathesis against the live app with it, so a
response that contradicts this document fails the build.
"""

from __future__ import annotations

from typing import Any

from .models import EMPLOYER_STATUSES, ApplicationStatus, EmploymentType, ExperienceLevel, JobStatus
from .search import SORTS

MAX_ID = 2**31 - 1


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": properties,
            "required": list(properties) if required is None else required}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


def _enum(values: Any) -> dict[str, Any]:
    return {"type": "string", "enum": [v.value if hasattr(v, "value") else v for v in values]}


STRING = {"type": "string"}
INTEGER = {"type": "integer"}
BOOLEAN = {"type": "boolean"}
NUMBER = {"type": "number"}
DATETIME = {"type": "string", "format": "date-time"}
ID = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
MONEY = {"type": "number", "minimum": 0, "maximum": 9999999999}
# The release the answering process serves (its RELEASE file, else RENDER_GIT_COMMIT); null when unknown.
RELEASE = {"type": "string", "nullable": True, "description": "Release id the process serves; null when unknown"}

ERROR_STATUSES = {
    "400": "Malformed request (body is not a JSON object)",
    "401": "Missing, invalid or expired token",
    "403": "Authenticated but not allowed",
    "404": "Not found",
    "409": "Conflicts with the current state",
    "413": "Request body too large",
    "415": "Body is not JSON",
    "422": "Invalid parameters; details name each field",
    "429": "Too many attempts from this address or for this account (login protection); retry after Retry-After s",
    "503": "Database unavailable",
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _responses(ok: dict[str, dict[str, Any]], errors: list[str]) -> dict[str, Any]:
    responses: dict[str, Any] = dict(ok)
    for status in errors:
        responses[status] = {"$ref": f"#/components/responses/E{status}"}
    responses["default"] = {"$ref": "#/components/responses/Unexpected"}
    return responses


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _path(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


PAGING = [_query("page", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 1}, "Page number"),
          _query("per_page", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}, "Items per page")]
AUTH = [{"bearerAuth": []}]


def _body(schema_name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(schema_name)}}}


def _page(item: str) -> dict[str, Any]:
    return _obj({"items": {"type": "array", "items": _ref(item)}, "total": {"type": "integer", "minimum": 0},
                 "page": INTEGER, "per_page": INTEGER, "pages": {"type": "integer", "minimum": 0}})


def _search_page() -> dict[str, Any]:
    """Job search counts matches only up to two pages past the requested one (search.COUNT_PAGES_AHEAD)."""
    schema = _page("Job")
    schema["properties"]["total"] = {
        "type": "integer", "minimum": 0,
        "description": "Matching jobs, counted up to two pages past this one: exact when total_is_lower_bound is "
                       "false, else there are more (pages is then a lower bound too)"}
    schema["properties"]["total_is_lower_bound"] = {
        **BOOLEAN, "description": "true: more jobs match than total (the count stopped two pages past this one)"}
    schema["properties"]["next_cursor"] = _nullable({
        "type": "string", "description": "Pass as cursor for the next page (null on the last page and with "
                                         "sort=relevance)"})
    schema["required"] = [*schema["required"], "total_is_lower_bound", "next_cursor"]
    return schema


def _job_input(required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "additionalProperties": False, "properties": {
        "title": {"type": "string", "minLength": 3, "maxLength": 200},
        "description": {"type": "string", "minLength": 10, "maxLength": 20000},
        "location": {"type": "string", "minLength": 2, "maxLength": 200},
        "employment_type": _enum(EmploymentType), "experience_level": _enum(ExperienceLevel),
        "salary_min": _nullable(MONEY), "salary_max": _nullable(MONEY), "is_remote": BOOLEAN,
        "is_featured": BOOLEAN, "category_id": _nullable(ID), "expires_at": _nullable(DATETIME),
        "status": {"type": "string", "enum": [JobStatus.DRAFT.value, JobStatus.PUBLISHED.value]},
    }}
    if required:  # OpenAPI 3.0 forbids an empty "required" list
        schema["required"] = required
    return schema


SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": _obj({"code": STRING, "message": STRING,
                                 "details": {"type": "object", "additionalProperties": STRING}},
                                required=["code", "message"])}),
    "User": _obj({"id": INTEGER, "email": STRING, "full_name": STRING,
                  "role": _enum(["job_seeker", "employer", "admin"]), "is_active": BOOLEAN,
                  "created_at": _nullable(DATETIME)}),
    "AuthResult": _obj({"user": _ref("User"), "token": STRING}),
    "Registered": _obj({"status": _enum(["accepted"]), "message": STRING}),
    "LoggedOut": _obj({"status": _enum(["logged_out"]), "message": STRING}),
    "CompanySummary": _obj({"id": INTEGER, "name": STRING, "slug": STRING, "is_verified": BOOLEAN}),
    "Company": _obj({"id": INTEGER, "name": STRING, "slug": STRING, "is_verified": BOOLEAN,
                     "description": STRING, "industry": STRING, "location": STRING,
                     "website": _nullable(STRING), "created_at": _nullable(DATETIME)}),
    "Category": _obj({"id": INTEGER, "name": STRING, "slug": STRING, "description": STRING}),
    "Job": _obj({
        "id": INTEGER, "title": STRING, "location": STRING, "employment_type": _enum(EmploymentType),
        "experience_level": _enum(ExperienceLevel), "salary_min": _nullable(NUMBER),
        "salary_max": _nullable(NUMBER), "is_remote": BOOLEAN, "status": _enum(JobStatus),
        "is_featured": BOOLEAN, "view_count": {"type": "integer", "minimum": 0},
        "posted_at": _nullable(DATETIME), "expires_at": _nullable(DATETIME),
        "company": _ref("CompanySummary"), "category": {"allOf": [_ref("Category")], "nullable": True},
    }),
    "JobDetail": {"allOf": [_ref("Job"), _obj({"description": STRING})]},
    "Application": _obj({"id": INTEGER, "job_id": INTEGER, "job_title": _nullable(STRING),
                         "applicant_id": INTEGER, "status": _enum(ApplicationStatus), "cover_letter": STRING,
                         "created_at": _nullable(DATETIME), "updated_at": _nullable(DATETIME)}),
    "RegisterInput": {"type": "object", "additionalProperties": False,
                      "required": ["email", "password", "full_name", "role"], "properties": {
                          "email": {"type": "string", "format": "email", "maxLength": 254},
                          "password": {"type": "string", "minLength": 8, "maxLength": 128},
                          "full_name": {"type": "string", "minLength": 1, "maxLength": 120},
                          "role": _enum(["job_seeker", "employer"])}},
    "LoginInput": {"type": "object", "additionalProperties": False, "required": ["email", "password"],
                   "properties": {"email": {"type": "string", "format": "email", "maxLength": 254},
                                  "password": {"type": "string", "minLength": 1, "maxLength": 128}}},
    "PasswordChangeInput": {"type": "object", "additionalProperties": False,
                            "required": ["current_password", "new_password"], "properties": {
                                "current_password": {"type": "string", "minLength": 1, "maxLength": 128},
                                "new_password": {"type": "string", "minLength": 8, "maxLength": 128}}},
    "JobCreate": _job_input(["title", "description", "location", "employment_type", "experience_level"]),
    "JobUpdate": _job_input([]),
    "CompanyCreate": {"type": "object", "additionalProperties": False,
                      "required": ["name", "slug", "industry", "location"], "properties": {
                          "name": {"type": "string", "minLength": 2, "maxLength": 200},
                          "slug": {"type": "string", "minLength": 2, "maxLength": 100,
                                   "pattern": "^[a-z0-9]+(-[a-z0-9]+)*$"},
                          "description": {"type": "string", "maxLength": 5000},
                          "industry": {"type": "string", "minLength": 2, "maxLength": 100},
                          "location": {"type": "string", "minLength": 2, "maxLength": 200},
                          "website": _nullable({"type": "string", "maxLength": 300})}},
    "ApplyInput": {"type": "object", "additionalProperties": False,
                   "properties": {"cover_letter": {"type": "string", "maxLength": 10000}}},
    # Employers move applications along the pipeline; withdrawing is the applicant's own endpoint.
    "StatusInput": {"type": "object", "additionalProperties": False, "required": ["status"],
                    "properties": {"status": _enum(EMPLOYER_STATUSES)}},
    "Dashboard": _obj({
        "company_id": INTEGER,
        "jobs_by_status": {"type": "object", "additionalProperties": INTEGER},
        "total_views": INTEGER,
        "applications_by_status": {"type": "object", "additionalProperties": INTEGER},
        "top_jobs": {"type": "array", "items": _obj({"job_id": INTEGER, "title": STRING, "applications": INTEGER})},
        "recent_applications": {"type": "array", "items": _obj({
            "application_id": INTEGER, "job_id": INTEGER, "job_title": STRING, "applicant_name": STRING,
            "status": _enum(ApplicationStatus), "created_at": DATETIME})},
    }),
    "CompanyProfile": _obj({"company": _ref("Company"), "open_jobs_count": INTEGER,
                            "jobs": {"type": "array", "items": _ref("Job")}}),
    "Ready": _obj({"status": _enum(["ok", "degraded", "unavailable"]), "database": _enum(["ok", "unavailable"]),
                   "redis": _enum(["ok", "unavailable"]), "release": RELEASE}),
}

JOB_FILTERS = [
    _query("q", {"type": "string", "maxLength": 200}, "Full-text query (web search syntax), ranked"),
    _query("location", {"type": "string", "maxLength": 100}, "Location contains (case-insensitive)"),
    _query("employment_type", _enum(EmploymentType), "Employment type"),
    _query("experience_level", _enum(ExperienceLevel), "Experience level"),
    _query("category_id", ID, "Category id"),
    _query("company_id", ID, "Company id"),
    _query("remote", BOOLEAN, "Remote jobs only (true) or on-site only (false)"),
    _query("salary_min", MONEY, "Jobs paying at least this (salary_max >= value)"),
    _query("salary_max", MONEY, "Jobs starting at most at this (salary_min <= value)"),
    _query("sort", _enum(SORTS), "Order; relevance needs q (default with q: relevance, else newest). Relevance "
           "ranks the newest matches (RANK_CANDIDATES, 200) by ts_rank; older matches follow newest first"),
    *PAGING,
    _query("cursor", {"type": "string", "maxLength": 500},
           "next_cursor of the previous page: continues after its last row (keyset; sorts newest, salary, views). "
           "Replaces page; costs the same on any page, where a deep page number reads every row before it"),
]

JOB_ID = [_path("job_id", ID)]
APPLICATION_ID = [_path("application_id", ID)]


def _op(summary: str, responses: dict[str, Any], *, params: list[dict[str, Any]] | None = None,
        body: str | None = None, secured: bool = False, tag: str = "jobs") -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    if params:
        operation["parameters"] = params
    if body:
        operation["requestBody"] = _body(body)
    if secured:
        operation["security"] = AUTH
    return operation


READ_ERRORS = ["422", "503"]
WRITE_ERRORS = ["400", "401", "403", "404", "409", "413", "415", "422", "503"]

PATHS: dict[str, Any] = {
    "/health": {"get": _op("Liveness", {"200": _json(_obj({"status": _enum(["ok"]), "release": RELEASE}),
                                                        "Process is up")},
                           tag="health")},
    "/health/ready": {"get": _op("Readiness: database required, Redis optional", {
        "200": _json(_ref("Ready"), "Ready (status ok, or degraded without Redis)"),
        "503": _json(_ref("Ready"), "Database unavailable")}, tag="health")},
    "/metrics": {"get": _op("Prometheus metrics", {"200": {
        "description": "Prometheus text exposition", "content": {"text/plain": {"schema": STRING}}}},
        tag="health")},
    "/api/openapi.json": {"get": _op("This document", {"200": _json({"type": "object"}, "OpenAPI 3 document")},
                                     tag="meta")},
    "/api/auth/register": {"post": _op(
        "Create an account unless the email has one; the same answer either way (no token: log in)", _responses(
            {"202": _json(_ref("Registered"), "Accepted: the email has an account now (new or not)")},
            ["400", "413", "415", "422", "429", "503"]),
        body="RegisterInput", tag="auth")},
    "/api/auth/login": {"post": _op("Get a token", _responses(
        {"200": _json(_ref("AuthResult"), "Logged in")}, ["400", "401", "413", "415", "422", "429", "503"]),
        body="LoginInput", tag="auth")},
    "/api/auth/me": {"get": _op("The current account", _responses(
        {"200": _json(_obj({"user": _ref("User")}), "The account")}, ["401", "503"]), secured=True, tag="auth")},
    "/api/auth/logout-all": {"post": _op("Revoke every token of the account, this one included", _responses(
        {"200": _json(_ref("LoggedOut"), "Every token revoked")}, ["401", "503"]), secured=True, tag="auth")},
    "/api/auth/password": {"post": _op(
        "Change the password (current one required); revokes every earlier token, returns a fresh one",
        _responses({"200": _json(_ref("AuthResult"), "Password changed")},
                   ["400", "401", "403", "413", "415", "422", "429", "503"]),
        body="PasswordChangeInput", secured=True, tag="auth")},
    "/api/jobs": {
        "get": _op("Search and list published jobs (cached 5 min)", _responses(
            {"200": _json(_search_page(), "A page of jobs")}, READ_ERRORS), params=JOB_FILTERS),
        "post": _op("Post a job for the employer's company", _responses(
            {"201": _json(_obj({"job": _ref("JobDetail")}), "Created")}, WRITE_ERRORS),
            body="JobCreate", secured=True),
    },
    "/api/jobs/featured": {"get": _op("Featured jobs (cached 10 min)", _responses(
        {"200": _json(_obj({"items": {"type": "array", "items": _ref("Job")}}), "Featured jobs")}, READ_ERRORS),
        params=[_query("limit", {"type": "integer", "minimum": 1, "maximum": 50, "default": 10}, "How many")])},
    "/api/jobs/{job_id}": {
        "get": _op("A job (counts a view)", _responses(
            {"200": _json(_obj({"job": _ref("JobDetail")}), "The job")}, ["404", "503"]), params=JOB_ID),
        "patch": _op("Update one of the employer's jobs", _responses(
            {"200": _json(_obj({"job": _ref("JobDetail")}), "Updated")}, WRITE_ERRORS),
            params=JOB_ID, body="JobUpdate", secured=True),
    },
    "/api/jobs/{job_id}/close": {"post": _op("Close one of the employer's jobs", _responses(
        {"200": _json(_obj({"job": _ref("JobDetail")}), "Closed")}, ["401", "403", "404", "409", "503"]),
        params=JOB_ID, secured=True)},
    "/api/jobs/{job_id}/applications": {
        "get": _op("Applications to one of the employer's jobs", _responses(
            {"200": _json(_page("Application"), "A page of applications")}, ["401", "403", "404", "422", "503"]),
            params=[*JOB_ID, _query("status", _enum(ApplicationStatus), "Only this status"), *PAGING],
            secured=True, tag="applications"),
        "post": _op("Apply to a job", _responses(
            {"201": _json(_obj({"application": _ref("Application")}), "Applied")}, WRITE_ERRORS),
            params=JOB_ID, body="ApplyInput", secured=True, tag="applications"),
    },
    "/api/categories": {"get": _op("Job categories (cached 1 h)", _responses(
        {"200": _json(_obj({"items": {"type": "array", "items": _ref("Category")}}), "Categories")}, ["503"]),
        tag="companies")},
    "/api/companies": {
        "get": _op("Companies", _responses({"200": _json(_page("Company"), "A page of companies")}, READ_ERRORS),
                   params=[_query("industry", {"type": "string", "maxLength": 100}, "Industry (exact)"),
                           _query("verified", BOOLEAN, "Verified only (true) or unverified (false)"), *PAGING],
                   tag="companies"),
        "post": _op("Create the employer's company", _responses(
            {"201": _json(_obj({"company": _ref("Company")}), "Created")}, WRITE_ERRORS),
            body="CompanyCreate", secured=True, tag="companies"),
    },
    "/api/companies/{slug}": {"get": _op("Company profile with open jobs (cached 30 min)", _responses(
        {"200": _json(_ref("CompanyProfile"), "The profile")}, ["404", "503"]),
        params=[_path("slug", {"type": "string", "maxLength": 100})], tag="companies")},
    "/api/applications": {"get": _op("My applications", _responses(
        {"200": _json(_page("Application"), "A page of applications")}, ["401", "403", "422", "503"]),
        params=PAGING, secured=True, tag="applications")},
    "/api/applications/{application_id}": {
        "get": _op("One application (its applicant or the job's employer)", _responses(
            {"200": _json(_obj({"application": _ref("Application")}), "The application")},
            ["401", "403", "404", "503"]), params=APPLICATION_ID, secured=True, tag="applications"),
        "patch": _op("Change an application's status (employer; valid transitions only)", _responses(
            {"200": _json(_obj({"application": _ref("Application")}), "Updated")}, WRITE_ERRORS),
            params=APPLICATION_ID, body="StatusInput", secured=True, tag="applications"),
    },
    "/api/applications/{application_id}/withdraw": {"post": _op("Withdraw my application", _responses(
        {"200": _json(_obj({"application": _ref("Application")}), "Withdrawn")}, ["401", "403", "404", "409", "503"]),
        params=APPLICATION_ID, secured=True, tag="applications")},
    "/api/employer/dashboard": {"get": _op("Employer dashboard (cached 15 min)", _responses(
        {"200": _json(_ref("Dashboard"), "Dashboard figures")}, ["401", "403", "503"]),
        secured=True, tag="employer")},
}


def document() -> dict[str, Any]:
    """The complete OpenAPI 3.0.3 document."""
    responses = {f"E{status}": _json(_ref("Error"), text) for status, text in ERROR_STATUSES.items()}
    responses["Unexpected"] = _json(_ref("Error"), "Any other error (405; 429 from a proxy's rate limit), same JSON shape")
    return {
        "openapi": "3.0.3",
        "info": {"title": "TalentSphere API", "version": "1.0.0",
                 "description": "Job board API. Errors are JSON: {error: {code, message, details?}}."},
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "responses": responses,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                               "description": "Token from POST /api/auth/login"}},
        },
    }
