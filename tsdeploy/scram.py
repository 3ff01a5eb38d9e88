"""PostgreSQL SCRAM-SHA-256 verifiers, computed on the control node (RFC 5802/7677, as PostgreSQL stores them).

The deploy sends PostgreSQL a verifier, never the password, and decides whether a stored verifier matches
the inventory's password by recomputing it with the stored salt and iteration count: an unchanged password
reports no change, a changed one is applied.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import unicodedata

ITERATIONS = 4096  # PostgreSQL's scram_iterations default


def _salted(password: str, salt: bytes, iterations: int) -> bytes:
    # PostgreSQL SASLpreps the password; for the ASCII passwords the vault holds that is the identity,
    # NFKC covers the common non-ASCII cases.
    normalized = unicodedata.normalize("NFKC", password).encode()
    return hashlib.pbkdf2_hmac("sha256", normalized, salt, iterations)


def verifier(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` for `password` (random 16-byte salt)."""
    salt = salt if salt is not None else os.urandom(16)
    salted = _salted(password, salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    b64 = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"
