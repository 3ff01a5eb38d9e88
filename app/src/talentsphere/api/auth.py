"""Accounts: register, login (signed expiring token), me."""

from __future__ import annotations

from flask import Blueprint, g
from sqlalchemy import select

from .. import login_guard, serialize
from ..db import session
from ..errors import APIError
from ..models import Role, User
from ..security import hash_password, issue_token, login_required, verify_password
from ..validation import Field, parse_body
from .common import commit_or_conflict

bp = Blueprint("auth", __name__)

REGISTER = {
    "email": Field("email", required=True, max_length=254),
    "password": Field(str, required=True, min_length=8, max_length=128),
    "full_name": Field(str, required=True, min_length=1, max_length=120),
    # Admins are made by operators, never by self-registration.
    "role": Field(Role, required=True),
}
LOGIN = {"email": Field("email", required=True, max_length=254),
         "password": Field(str, required=True, min_length=1, max_length=128)}
# Compared against when the email is unknown, so a login takes as long either way.
_DUMMY_HASH = hash_password("talentsphere-timing-equaliser")


@bp.post("/register")
def register() -> tuple[dict, int]:
    """Create a job seeker or employer account and return it with a token."""
    data = parse_body(REGISTER)
    login_guard.before_register()  # 429 before the password is hashed (login_guard.py)
    if data["role"] is Role.ADMIN:
        raise APIError(422, "validation_error", "request parameters are invalid",
                       {"role": "admin accounts cannot self-register; use job_seeker or employer"})
    user = User(email=data["email"], password_hash=hash_password(data["password"]),
                full_name=data["full_name"], role=data["role"], is_active=True)
    db = session()
    db.add(user)
    commit_or_conflict(db, "email_taken",
                       "an account with this email exists; log in instead")
    return {"user": serialize.user(user), "token": issue_token(user)}, 201


@bp.post("/login")
def login() -> dict:
    """Exchange email and password for a token."""
    data = parse_body(LOGIN)
    login_guard.before_login(data["email"])  # 429 before the user is looked up or a hash computed
    user = session().scalar(select(User).where(User.email == data["email"]))
    valid = verify_password(user.password_hash if user else _DUMMY_HASH, data["password"])
    if user is None or not valid or not user.is_active:
        login_guard.login_failed(data["email"])
        raise APIError(401, "invalid_credentials", "email or password is wrong, or the account is disabled")
    login_guard.login_succeeded(data["email"])
    return {"user": serialize.user(user), "token": issue_token(user)}


@bp.get("/me")
@login_required
def me() -> dict:
    """The account the token belongs to."""
    return {"user": serialize.user(g.user)}
