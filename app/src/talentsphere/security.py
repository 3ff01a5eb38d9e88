"""Passwords (scrypt) and signed, expiring bearer tokens (itsdangerous), plus the auth decorators."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import current_app, g, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
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


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=TOKEN_SALT)


def issue_token(user: User) -> str:
    """A signed token naming the user; expiry is checked on use (TOKEN_MAX_AGE seconds)."""
    return _serializer().dumps({"uid": user.id})


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
    user = session().scalar(select(User).where(User.id == uid)) if isinstance(uid, int) else None
    if user is None or not user.is_active:
        raise _unauthorized("account not found or disabled")
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
