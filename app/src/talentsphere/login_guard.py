"""Brute-force protection of POST /api/auth/login and POST /api/auth/register, answered before any scrypt.

A password check costs scrypt (about 90 ms of CPU and 32 MiB); without a limit of its own the app let one
address keep two cores busy and guess one account's password 1.7 million times a day. nginx limits
/api/auth/ per address where it runs; this guard is the app's own, and the only one on Render (no nginx).

What it counts (app/README.md, Login protection, lists the settings):

- Failed logins per account (``account:<email>``, known or not: an unknown email locks exactly like a known
  one, so a lockout says nothing about which accounts exist) and per client address (``address:<ip>``; an
  IPv6 address counts as its /64, which one host usually owns whole). After AUTH_MAX_FAILURES failures of an
  account (AUTH_ADDRESS_MAX_FAILURES of an address) within AUTH_FAILURE_WINDOW seconds, every further
  failure locks the key: AUTH_LOCKOUT_SECONDS the first time, doubling with each failure after that, at most
  AUTH_LOCKOUT_MAX_SECONDS. A locked key's attempts are answered 429 before the user is looked up, so they
  cost no scrypt. The failures are forgotten AUTH_FAILURE_WINDOW seconds after the later of the first
  failure and the end of the last lockout, and a successful login clears its account's (never its
  address's: one known password must not reset an address guessing others).
- Attempts (login and registration, successful or not) per address: more than AUTH_ADDRESS_RATE in a
  minute are answered 429, which bounds the scrypt one address can cause to AUTH_ADDRESS_RATE hashes a
  minute (30: 2.7 s of CPU a minute, under 5 % of a core).

The client address is ``request.remote_addr``, after ProxyFix (PROXY_COUNT) has taken it from
X-Forwarded-For: behind a proxy that PROXY_COUNT does not count every client would share the proxy's address.

Where the counters live: Redis (the cache's client, breaker and key prefix), each update one Lua script, so
concurrent failures are counted exactly and the lockout decision is taken on the count it belongs to; every
key has a TTL (the deploy's ``volatile-lru`` may evict it under memory pressure, which forgets a lockout
early, never makes one). When Redis cannot be used (down, breaker open, or refusing writes), the same
counters live in PostgreSQL's ``auth_failures`` table, updated with ``INSERT ... ON CONFLICT DO UPDATE``
(exact under concurrency: the row is locked for the update). The two stores are not merged: counters
recorded during an outage stay in PostgreSQL, and an attacker gains at most one more AUTH_MAX_FAILURES per
switch. Rows whose window is over are deleted by the failures that find them (about one in a hundred).
"""

from __future__ import annotations

import ipaddress
import math
import random
from dataclasses import dataclass
from typing import Any, NoReturn

from flask import abort, current_app, jsonify, request
from sqlalchemy import text

from . import metrics
from .cache import Cache
from .db import session
from .errors import error_body

# The per-address attempt rate is counted in fixed windows of this many seconds.
RATE_PERIOD = 60
# 2**EXPONENT_CAP times AUTH_LOCKOUT_SECONDS is past any sensible AUTH_LOCKOUT_MAX_SECONDS; the cap keeps the
# power finite (PostgreSQL raises on overflow).
EXPONENT_CAP = 40
# Share of PostgreSQL failure updates that also delete the rows whose window is over.
CLEANUP_SHARE = 0.01

# KEYS[1]: the address's rate counter; KEYS[2..]: failure hashes whose lockout to check. ARGV: the rate (0 =
# off), its period in ms. Returns {ms until the rate window ends if over the rate else 0, ms left of each
# lockout (0 = not locked)}. Redis's own clock, so that every app host agrees.
CHECK_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local waits = {0}
local limit = tonumber(ARGV[1])
if limit > 0 then
  local n = redis.call('INCR', KEYS[1])
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    ttl = tonumber(ARGV[2])
  end
  if n > limit then waits[1] = ttl end
end
for i = 2, #KEYS do
  local l = tonumber(redis.call('HGET', KEYS[i], 'l') or '0')
  waits[i] = math.max(0, l - now)
end
return waits
"""

# One failure for each of KEYS (hashes: f failures, s window start, l locked until, all ms). ARGV: window ms,
# first lockout ms, longest lockout ms, then each key's threshold (0 = this key is not counted). Returns the
# lockout each key got, in ms (0 = none).
FAIL_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, base, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local locks = {}
for i = 1, #KEYS do
  local limit = tonumber(ARGV[3 + i])
  locks[i] = 0
  if limit > 0 then
    local f = tonumber(redis.call('HGET', KEYS[i], 'f') or '0')
    local s = tonumber(redis.call('HGET', KEYS[i], 's') or '0')
    local l = tonumber(redis.call('HGET', KEYS[i], 'l') or '0')
    if f == 0 or (now - s > window and now - l > window) then
      f, s, l = 0, now, 0
    end
    f = f + 1
    if f >= limit then
      locks[i] = math.floor(math.min(base * 2 ^ math.min(f - limit, %(exponent_cap)d), cap))
      l = now + locks[i]
    end
    redis.call('HSET', KEYS[i], 'f', f, 's', s, 'l', l)
    redis.call('PEXPIREAT', KEYS[i], math.max(s, l) + window)
  end
end
return locks
""" % {"exponent_cap": EXPONENT_CAP}

# PostgreSQL: the same counters in auth_failures. The rate row: failures = attempts in the window that
# started at window_started_at.
PG_RATE = text("""
INSERT INTO auth_failures AS a (key, failures, window_started_at, locked_until)
VALUES (:key, 1, now(), NULL)
ON CONFLICT (key) DO UPDATE SET
  failures = CASE WHEN a.window_started_at <= now() - make_interval(secs => :period) THEN 1
                  ELSE a.failures + 1 END,
  window_started_at = CASE WHEN a.window_started_at <= now() - make_interval(secs => :period) THEN now()
                           ELSE a.window_started_at END
RETURNING a.failures, EXTRACT(EPOCH FROM a.window_started_at + make_interval(secs => :period) - now())
""")
PG_LOCKS = text("SELECT key, EXTRACT(EPOCH FROM locked_until - now()) FROM auth_failures "
                "WHERE key = ANY(:keys) AND locked_until > now()")
# A new window when both the window and the window after the last lockout are over (FAIL_SCRIPT's rule).
_RESET = ("(a.window_started_at < now() - make_interval(secs => :window) "
          "AND (a.locked_until IS NULL OR a.locked_until < now() - make_interval(secs => :window)))")
_FAILURES = f"(CASE WHEN {_RESET} THEN 1 ELSE a.failures + 1 END)"
PG_FAIL = text(f"""
INSERT INTO auth_failures AS a (key, failures, window_started_at, locked_until)
VALUES (:key, 1, now(), CASE WHEN 1 >= :limit THEN now() + make_interval(secs => :base) END)
ON CONFLICT (key) DO UPDATE SET
  failures = {_FAILURES},
  window_started_at = CASE WHEN {_RESET} THEN now() ELSE a.window_started_at END,
  locked_until = CASE
    WHEN {_FAILURES} >= :limit
      THEN now() + make_interval(secs => LEAST(:base * power(2, LEAST({_FAILURES} - :limit, {EXPONENT_CAP})), :cap))
    WHEN {_RESET} THEN NULL
    ELSE a.locked_until END
RETURNING CASE WHEN a.failures >= :limit THEN EXTRACT(EPOCH FROM a.locked_until - now()) ELSE 0 END
""")
PG_SUCCESS = text("DELETE FROM auth_failures WHERE key = :key")
PG_CLEANUP = text("DELETE FROM auth_failures WHERE GREATEST(window_started_at, COALESCE(locked_until, "
                  "window_started_at)) < now() - make_interval(secs => GREATEST(:window, :period))")


@dataclass(frozen=True)
class GuardSettings:
    """The AUTH_* settings (config.py); 0 turns a limit off."""
    max_failures: int
    address_max_failures: int
    window: float
    lockout: float
    lockout_max: float
    address_rate: int

    @classmethod
    def from_config(cls, config: Any) -> GuardSettings:
        """Read the app's config."""
        return cls(max_failures=int(config["AUTH_MAX_FAILURES"]),
                   address_max_failures=int(config["AUTH_ADDRESS_MAX_FAILURES"]),
                   window=float(config["AUTH_FAILURE_WINDOW"]), lockout=float(config["AUTH_LOCKOUT_SECONDS"]),
                   lockout_max=float(config["AUTH_LOCKOUT_MAX_SECONDS"]),
                   address_rate=int(config["AUTH_ADDRESS_RATE"]))


def account_key(email: str) -> str:
    """The counter key of an account (the email as validation normalised it: stripped, lower case)."""
    return f"account:{email}"


def client_address() -> str:
    """The client's address after ProxyFix; an IPv6 address as its /64 (one host's usual allocation)."""
    raw = request.remote_addr or "unknown"
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return raw[:200]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # ::ffff:a.b.c.d is the IPv4 client a.b.c.d
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class LoginGuard:
    """The counters of one app, in its Redis (through its cache) or, when Redis cannot be used, PostgreSQL."""

    def __init__(self, cache: Cache, settings: GuardSettings) -> None:
        self.cache = cache
        self.settings = settings
        self._check = cache.client.register_script(CHECK_SCRIPT)
        self._fail = cache.client.register_script(FAIL_SCRIPT)

    def redis_key(self, key: str) -> str:
        """The Redis key of a counter (under the app's prefix, the only keys its ACL user may touch)."""
        return f"{self.cache.prefix}auth:{key}"

    # Before the password is hashed ------------------------------------------------------------------------
    def before_attempt(self, email: str | None) -> None:
        """Count one attempt of this address; answer 429 (abort) if the address is over its rate, or the
        address or the account ``email`` (None: a registration, no account yet) is locked out."""
        client = client_address()
        address, rate_key = f"address:{client}", f"rate:{client}"
        checked = [address] if email is None else [account_key(email), address]
        s = self.settings
        keys = [self.redis_key(rate_key), *(self.redis_key(k) for k in checked)]
        waits = self.cache.call(lambda r: self._check(keys=keys, args=[s.address_rate, RATE_PERIOD * 1000],
                                                      client=r))
        if isinstance(waits, list):
            rate_wait = waits[0] / 1000
            locks = {key: wait / 1000 for key, wait in zip(checked, waits[1:])}
        else:
            rate_wait, locks = self._pg_check(rate_key, checked)
        if rate_wait > 0:
            self._refuse("rate", rate_wait,
                         f"too many login and registration attempts from your address (at most "
                         f"{s.address_rate} a minute)")
        for key, wait in locks.items():
            if wait > 0:
                scope = key.split(":", 1)[0]
                what = "this account" if scope == "account" else "your address"
                self._refuse(scope, wait, f"too many failed logins for {what}")

    def _pg_check(self, rate_key: str, checked: list[str]) -> tuple[float, dict[str, float]]:
        db = session()
        rate_wait = 0.0
        if self.settings.address_rate > 0:
            count, left = db.execute(PG_RATE, {"key": rate_key, "period": RATE_PERIOD}).one()
            if count > self.settings.address_rate:
                rate_wait = max(float(left), 0.001)
        locks = {key: float(left) for key, left in db.execute(PG_LOCKS, {"keys": checked}).all()}
        db.commit()
        return rate_wait, locks

    def _refuse(self, reason: str, wait: float, message: str) -> NoReturn:
        metrics.AUTH_REFUSED.labels(reason).inc()
        seconds = max(1, math.ceil(wait))
        response = jsonify(error_body("too_many_attempts", f"{message}; try again in {seconds} s"))
        response.status_code = 429
        response.headers["Retry-After"] = str(seconds)
        abort(response)  # a ready response: the app's error handlers do not rebuild it (Retry-After stays)

    # After the password was checked ------------------------------------------------------------------------
    def failed(self, email: str) -> None:
        """Count a failed login for the account and the address; a count at its threshold starts a lockout."""
        s = self.settings
        pairs = [(account_key(email), s.max_failures), (f"address:{client_address()}", s.address_max_failures)]
        counted = [(key, limit) for key, limit in pairs if limit > 0]
        if not counted:
            return
        keys = [self.redis_key(key) for key, _ in counted]
        args = [int(s.window * 1000), int(s.lockout * 1000), int(s.lockout_max * 1000),
                *(limit for _, limit in counted)]
        locks = self.cache.call(lambda r: self._fail(keys=keys, args=args, client=r))
        if isinstance(locks, list):
            locked = [key for (key, _), ms in zip(counted, locks) if ms > 0]
        else:
            locked = self._pg_failed(counted)
        for key in locked:
            metrics.AUTH_LOCKOUTS.labels(key.split(":", 1)[0]).inc()

    def _pg_failed(self, counted: list[tuple[str, int]]) -> list[str]:
        s = self.settings
        db = session()
        locked = []
        for key, limit in counted:
            left = db.execute(PG_FAIL, {"key": key, "limit": limit, "window": s.window, "base": s.lockout,
                                        "cap": s.lockout_max}).scalar_one()
            if left and left > 0:
                locked.append(key)
        if random.random() < CLEANUP_SHARE:
            db.execute(PG_CLEANUP, {"window": s.window, "period": RATE_PERIOD})
        db.commit()
        return locked

    def succeeded(self, email: str) -> None:
        """A successful login: its account's failures are forgotten (in the store in use)."""
        key = account_key(email)
        if self.cache.call(lambda r: r.delete(self.redis_key(key))) is None:
            db = session()
            db.execute(PG_SUCCESS, {"key": key})
            db.commit()


def guard() -> LoginGuard:
    """The current app's guard (made on first use from its cache and AUTH_* settings)."""
    extensions = current_app.extensions
    found = extensions.get("talentsphere.login_guard")
    if found is None:
        found = LoginGuard(extensions["talentsphere.cache"], GuardSettings.from_config(current_app.config))
        extensions["talentsphere.login_guard"] = found
    return found


def before_login(email: str) -> None:
    """Call before looking the user up: 429 if the address or the account is locked or over its rate."""
    guard().before_attempt(email)


def before_register() -> None:
    """Call before hashing a new password: 429 if the address is locked or over its rate."""
    guard().before_attempt(None)


def login_failed(email: str) -> None:
    """Call when a login is refused (wrong password, unknown email, disabled account)."""
    guard().failed(email)


def login_succeeded(email: str) -> None:
    """Call when a login succeeds."""
    guard().succeeded(email)
