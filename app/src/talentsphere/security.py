"""Passwords (scrypt) and signed, expiring bearer tokens (itsdangerous), plus the auth decorators."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from flask import current_app, g, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from .db import session
from .errors import APIError, forbidden
from .models import Role, User

F = TypeVar("F", bound=Callable[..., Any])
TOKEN_SALT = "talentsphere.auth"


def hash_password(password: str) -> str:
    """Hash with scrypt (memory-hard KDF, salted)."""
    return generate_password_hash(password, method="scrypt")


def verify_password(stored_hash: str, password: str) -> bool:
    """Constant-time check of ``password`` against ``stored_hash``."""
    return check_password_hash(stored_hash, password)


def signing_keys(config: Mapping[str, Any]) -> list[str]:
    """The keys tokens are checked against, oldest first: SECRET_KEY_FALLBACKS, then SECRET_KEY.

    itsdangerous signs with the last key and accepts a signature by any of them, so after a rotation
    (new SECRET_KEY, the old one moved to SECRET_KEY_FALLBACKS) the tokens already issued keep working for
    their lifetime (TOKEN_MAX_AGE) while every new token is signed with the new key.
    """
    fallbacks = [key for key in config.get("SECRET_KEY_FALLBACKS") or [] if key != config["SECRET_KEY"]]
    return [*fallbacks, config["SECRET_KEY"]]


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(signing_keys(current_app.config), salt=TOKEN_SALT)


def issue_token(user: User, token_version: int | None = None) -> str:
    """A signed token naming the user and their token version (``token_version``, else the loaded one);
    expiry is checked on use (TOKEN_MAX_AGE seconds), the version too: bumping users.token_version revokes
    every token signed before."""
    version = user.token_version if token_version is None else token_version
    return _serializer().dumps({"uid": user.id, "tv": version})


def revoke_tokens(db: Session, user_id: int, **changes: Any) -> int:
    """Bump the user's token version (every token issued so far stops working) together with ``changes``
    (e.g. a new password hash) in one UPDATE, so two concurrent bumps both count; returns the new version.
    The caller commits; the loaded User object is left as it was (use the returned version)."""
    return db.execute(update(User).where(User.id == user_id)
                      .values(token_version=User.token_version + 1, **changes)
                      .returning(User.token_version)
                      .execution_options(synchronize_session=False)).scalar_one()


def _unauthorized(message: str) -> APIError:
    return APIError(401, "unauthorized", message)


def user_from_request() -> User:
    """The active user named by the request's bearer token, or a 401."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("send 'Authorization: Bearer <token>' (get a token from POST /api/auth/login)")
    try:
        payload = _serializer().loads(token.strip(), max_age=current_app.config["TOKEN_MAX_AGE"])
    except SignatureExpired:
        raise _unauthorized("token expired; log in again") from None
    except BadSignature:
        raise _unauthorized("token invalid; log in again") from None
    uid = payload.get("uid") if isinstance(payload, dict) else None
    # Tokens of the release before token versions carry none: they are version 0, which every account had
    # when migration 0003 added the column, so they last until the account's first revocation.
    version = payload.get("tv", 0) if isinstance(payload, dict) else None
    if not isinstance(uid, int) or isinstance(version, bool) or not isinstance(version, int):
        raise _unauthorized("token invalid; log in again")
    user = session().scalar(select(User).where(User.id == uid))
    if user is None or not user.is_active:
        raise _unauthorized("account not found or disabled")
    if version != user.token_version:
        raise _unauthorized("token revoked; log in again")
    return user


def login_required(view: F) -> F:
    """Require a valid token; the user is in ``g.user``."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.user = user_from_request()
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def roles_required(*roles: Role) -> Callable[[F], F]:
    """Require a valid token of a user with one of ``roles``."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            g.user = user_from_request()
            if g.user.role not in roles:
                allowed = ", ".join(role.value for role in roles)
                raise forbidden(f"this action needs the role {allowed}")
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
