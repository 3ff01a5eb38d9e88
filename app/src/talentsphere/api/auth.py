"""Accounts: register, login (signed expiring token), me, log out everywhere, change password.

Registration does not tell whether an email has an account: the answer, its shape and its time are the
same either way (the password is hashed in both cases, and one INSERT ... ON CONFLICT DO NOTHING runs), and
it carries no token; the token comes from login. Otherwise anyone could test a list of emails against the
site and learn who has an account.
"""

from __future__ import annotations

from flask import Blueprint, g
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from .. import login_guard, serialize
from ..db import session
from ..errors import APIError
from ..models import Role, User
from ..security import hash_password, issue_token, login_required, revoke_tokens, verify_password
from ..validation import Field, parse_body

bp = Blueprint("auth", __name__)

PASSWORD = Field(str, required=True, min_length=8, max_length=128)
REGISTER = {
    "email": Field("email", required=True, max_length=254),
    "password": PASSWORD,
    "full_name": Field(str, required=True, min_length=1, max_length=120),
    # Admins are made by operators, never by self-registration.
    "role": Field(Role, required=True),
}
LOGIN = {"email": Field("email", required=True, max_length=254),
         "password": Field(str, required=True, min_length=1, max_length=128)}
CHANGE_PASSWORD = {"current_password": Field(str, required=True, min_length=1, max_length=128),
                   "new_password": PASSWORD}
# The one answer to every valid registration, whether the email was new or not.
REGISTERED = {"status": "accepted",
              "message": "if this email had no account, it has one now; log in with POST /api/auth/login"}
# Compared against when the email is unknown, so a login takes as long either way.
_DUMMY_HASH = hash_password("talentsphere-timing-equaliser")


@bp.post("/register")
def register() -> tuple[dict, int]:
    """Create a job seeker or employer account unless the email has one; the answer is the same (202)."""
    data = parse_body(REGISTER)
    login_guard.before_register()  # 429 before the password is hashed (login_guard.py)
    if data["role"] is Role.ADMIN:
        raise APIError(422, "validation_error", "request parameters are invalid",
                       {"role": "admin accounts cannot self-register; use job_seeker or employer"})
    db = session()
    # An existing account is left as it is (its password too); the conflict costs what an insert costs.
    db.execute(insert(User).values(email=data["email"], password_hash=hash_password(data["password"]),
                                   full_name=data["full_name"], role=data["role"], is_active=True)
               .on_conflict_do_nothing(index_elements=[User.email]))
    db.commit()
    return dict(REGISTERED), 202


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


@bp.post("/logout-all")
@login_required
def logout_all() -> dict:
    """Revoke every token of the account (this one too): a lost device, a leaked token."""
    db = session()
    revoke_tokens(db, g.user.id)
    db.commit()
    return {"status": "logged_out", "message": "every token of this account is revoked; log in again"}


@bp.post("/password")
@login_required
def change_password() -> dict:
    """Change the password after checking the current one; every earlier token is revoked, and the answer
    carries a fresh one so this client stays logged in."""
    data = parse_body(CHANGE_PASSWORD)
    # A stolen token must not become a way to guess the password: the same counters as login.
    login_guard.before_login(g.user.email)
    if not verify_password(g.user.password_hash, data["current_password"]):
        login_guard.login_failed(g.user.email)
        raise APIError(403, "wrong_password", "current_password is wrong; send the password you log in with",
                       {"current_password": "does not match the account's password"})
    login_guard.login_succeeded(g.user.email)
    db = session()
    version = revoke_tokens(db, g.user.id, password_hash=hash_password(data["new_password"]))
    db.commit()
    return {"user": serialize.user(g.user), "token": issue_token(g.user, version)}
