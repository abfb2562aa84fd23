"""Accounts: argon2 password hashes, log-in, and the role check every page and every action calls.

Roles: ``admin`` (everything), ``annotator`` (rates), ``viewer`` (reads runs, progress and agreement).
The check is made against the user as stored now, so a deactivated account or a changed role takes
effect at the next click, not at the next log-in.

Log-in is rate limited in the store, not in the browser session, so a script that opens a fresh session for
every guess meets the same limit: after ``max_failures`` failed attempts on one name within ``window`` (or
``max_client_failures`` from one client address, across names), further attempts are refused without checking
the password until the oldest of those failures leaves the window. See ``log_in``. An admin lifts a lock at once
with ``evaltune users unlock NAME`` (``unlock``) or ``evaltune users reset-password NAME`` (``reset_password``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from evaltune import settings, textfiles
from evaltune.db.base import utcnow
from evaltune.db.engine import Store
from evaltune.db.ratings import ROLES, LoginAttempt, User
from evaltune.feedback_ui.sessions import revoke_all
from evaltune.feedback_ui.transactions import in_transaction
from evaltune.suggestions import did_you_mean

MIN_PASSWORD_LENGTH = 8
# A hash to verify against when the name is unknown, so that a wrong name takes as long as a wrong password.
_DUMMY_PASSWORD = "not-a-real-password"


class AuthError(Exception):
    """A log-in failed, or an account cannot be created; the message is safe to show."""


class LockedOut(AuthError):
    """Too many failed log-ins for this name or address: refused without checking the password."""

    def __init__(self, retry_at: datetime, now: datetime) -> None:
        minutes = max(1, math.ceil((retry_at - now).total_seconds() / 60))
        super().__init__(f"too many failed log-ins; try again after {retry_at:%H:%M} UTC (in {minutes} minute"
                         f"{'s' if minutes > 1 else ''})")
        self.retry_at = retry_at


class PermissionDenied(Exception):
    """The user's role does not allow this page or action."""


@dataclass(frozen=True)
class Account:
    """The signed-in user as the app needs it: no password hash travels with it."""

    id: int
    name: str
    role: str


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    return PasswordHasher()  # argon2id with the library's current recommended cost


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher().hash(_DUMMY_PASSWORD)


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (salted; never the same twice)."""
    return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches ``password_hash``; False for a wrong password or a malformed hash."""
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def create_user(session: Session, name: str, role: str, password: str) -> Account:
    """Store a new active user with a hashed password.

    Raises ``AuthError`` for an unknown role, an empty name, a password shorter than 8 characters,
    or a name already taken.
    """
    name = name.strip()
    if role not in ROLES:
        raise AuthError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    if not name:
        raise AuthError("a user needs a name")
    _check_password(password)
    user = User(name=name, role=role, password_hash=hash_password(password), active=True)
    try:
        with session.begin_nested():
            session.add(user)
    except IntegrityError:
        raise AuthError(f"a user named {name!r} already exists") from None
    return Account(user.id, user.name, user.role)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AuthError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")


def find_user(session: Session, name: str) -> User:
    """The account named ``name``; raises ``AuthError`` naming the closest existing name when there is none."""
    user = session.execute(select(User).where(User.name == name.strip())).scalar_one_or_none()
    if user is None:
        names = session.execute(select(User.name)).scalars()
        raise AuthError(f"no user {name.strip()!r}{did_you_mean(name.strip(), names)}; see 'evaltune users list'")
    return user


def reset_password(session: Session, name: str, password: str) -> int:
    """Give the account ``name`` a new password, sign out its browsers and lift its log-in lock (``unlock``), for
    a trusted caller (the command line); returns how many failed log-ins stopped counting. Raises ``AuthError``
    for an unknown name or a password shorter than 8 characters."""
    user = find_user(session, name)
    _check_password(password)
    user.password_hash = hash_password(password)
    revoke_all(session, user.id, "password reset")  # whoever knew the old password may hold a session
    return unlock(session, user.name)


def set_role(session: Session, name: str, role: str) -> tuple[str, int]:
    """Give the account ``name`` the role ``role`` and sign out its browsers, for a trusted caller (the command
    line); returns the role it had and how many sessions ended. Raises ``AuthError`` for an unknown name or
    role."""
    user = find_user(session, name)
    if role not in ROLES:
        raise AuthError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    before, user.role = user.role, role
    ended = revoke_all(session, user.id, "role changed") if before != role else 0
    return before, ended


def unlock(session: Session, name: str) -> int:
    """Lift the log-in lock on the account ``name``, for a trusted caller (the command line): its failed
    attempts stop counting toward the limit (they stay in the store, marked ``unlocked``); returns how many.
    Raises ``AuthError`` for an unknown name."""
    user = find_user(session, name)
    cleared = session.execute(
        update(LoginAttempt)
        .where(LoginAttempt.name == user.name, LoginAttempt.outcome == "failed")
        .values(outcome="unlocked")
        .returning(LoginAttempt.id)
    ).scalars().all()
    return len(cleared)


def authenticate(session: Session, name: str, password: str) -> Account:
    """The active user with this name and password; raises ``AuthError`` (one message for every failure)."""
    user = session.execute(select(User).where(User.name == name.strip())).scalar_one_or_none()
    if user is None:
        verify_password(_dummy_hash(), password)  # same cost as a real check: names cannot be probed by timing
        raise AuthError("wrong name or password")
    if not verify_password(user.password_hash, password) or not user.active:
        raise AuthError("wrong name or password")
    if _hasher().check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return Account(user.id, user.name, user.role)


@dataclass(frozen=True)
class LoginLimits:
    """The log-in rate limit; ``from_env`` reads ``EVALTUNE_LOGIN_MAX_FAILURES`` (default 5),
    ``EVALTUNE_LOGIN_MAX_CLIENT_FAILURES`` (default 20) and ``EVALTUNE_LOGIN_WINDOW_MINUTES`` (default 15)."""

    max_failures: int = 5  # per name
    max_client_failures: int = 20  # per client address, across names (password spraying)
    window: timedelta = timedelta(minutes=15)
    keep: timedelta = timedelta(days=1)  # attempts older than this (and the window) are deleted

    @classmethod
    def from_env(cls) -> LoginLimits:
        limits = settings.login_limits()
        return cls(max_failures=limits.max_failures, max_client_failures=limits.max_client_failures,
                   window=limits.window)


_COUNTED = ("checking", "failed")  # an attempt still being checked counts: parallel guesses cannot slip through


def _start_attempt(session: Session, name: str, client: str | None, limits: LoginLimits, now: datetime) -> int:
    session.execute(delete(LoginAttempt).where(LoginAttempt.created_at < now - max(limits.keep, limits.window)))
    attempt = LoginAttempt(name=name, client=client, outcome="checking", created_at=now)
    session.add(attempt)
    session.flush()
    return attempt.id


def _retry_at(session: Session, condition: ColumnElement[bool], attempt_id: int, limit: int, now: datetime,
              window: timedelta, reset_by_ok: bool) -> datetime | None:
    """When attempts matching ``condition`` may go on, if ``limit`` counted failures are in the window now.

    With ``reset_by_ok``, failures before the last successful log-in do not count (for a name; not for a client
    address, which could otherwise reset its count by logging in to an account of its own). Attempts by others
    that are still being checked count, so that of several parallel guesses only as many as the limit allows
    get their password checked.
    """
    since = now - window
    last_ok = session.execute(
        select(func.max(LoginAttempt.created_at)).where(condition, LoginAttempt.outcome == "ok",
                                                        LoginAttempt.created_at > since)
    ).scalar_one() if reset_by_ok else None
    times = session.execute(
        select(LoginAttempt.created_at)
        .where(condition, LoginAttempt.id != attempt_id, LoginAttempt.outcome.in_(_COUNTED),
               LoginAttempt.created_at > (last_ok or since))
        .order_by(LoginAttempt.created_at.desc())
        .limit(limit)
    ).scalars().all()
    if len(times) < limit:
        return None
    return max(times[-1] + window, now)  # the lock lifts when the oldest of the last ``limit`` leaves the window


def _check_limits(session: Session, attempt_id: int, name: str, client: str | None, limits: LoginLimits,
                  now: datetime) -> datetime | None:
    """The time to retry after if this attempt is refused (and marks it refused); None if it may go on."""
    waits = [_retry_at(session, LoginAttempt.name == name, attempt_id, limits.max_failures, now, limits.window,
                       reset_by_ok=True)]
    if client:
        waits.append(_retry_at(session, LoginAttempt.client == client, attempt_id, limits.max_client_failures,
                               now, limits.window, reset_by_ok=False))
    retry_at = max((wait for wait in waits if wait is not None), default=None)
    if retry_at is not None:
        _finish_attempt(session, attempt_id, "refused")
    return retry_at


def _finish_attempt(session: Session, attempt_id: int, outcome: str) -> None:
    session.execute(update(LoginAttempt).where(LoginAttempt.id == attempt_id).values(outcome=outcome))


def log_in(store: Store, name: str, password: str, client: str | None = None, limits: LoginLimits | None = None,
           now: datetime | None = None) -> Account:
    """``authenticate``, rate limited by name and by client address across sessions and processes.

    The attempt is stored (and committed) before anything is checked; then, if the name or the client has
    reached its limit of failures in the window, ``LockedOut`` is raised, saying when to retry, without the
    cost of an argon2 check. Otherwise the password is checked and the attempt marked ok or failed.
    Raises ``AuthError`` (``LockedOut`` is one) for every refusal.
    """
    limits = limits or LoginLimits.from_env()
    now = now or utcnow()
    key = name.strip()[:100]
    client = client[:64] if client else None
    attempt_id = in_transaction(store, lambda s: _start_attempt(s, key, client, limits, now))
    retry_at = in_transaction(store, lambda s: _check_limits(s, attempt_id, key, client, limits, now))
    if retry_at is not None:
        raise LockedOut(retry_at, now)
    try:
        account = in_transaction(store, lambda s: authenticate(s, name, password))  # may upgrade an old hash
    except AuthError:
        in_transaction(store, lambda s: _finish_attempt(s, attempt_id, "failed"))
        raise
    in_transaction(store, lambda s: _finish_attempt(s, attempt_id, "ok"))
    return account


def load_account(session: Session, user_id: int) -> Account | None:
    """The user as stored now, or None if the account is gone or deactivated."""
    user = session.get(User, user_id)
    if user is None or not user.active:
        return None
    return Account(user.id, user.name, user.role)


def require_role(account: Account | None, *roles: str) -> Account:
    """``account`` if it holds one of ``roles`` (admin always passes); else raises ``PermissionDenied``."""
    if account is None:
        raise PermissionDenied("log in first")
    if account.role != "admin" and account.role not in roles:
        raise PermissionDenied(f"{account.name} is a {account.role}; this needs {' or '.join(roles)}")
    return account


def list_users(session: Session) -> list[User]:
    """Every account, by name."""
    return list(session.execute(select(User).order_by(User.name)).scalars())


def set_active(session: Session, actor: Account, user_id: int, active: bool) -> None:
    """Activate or deactivate an account (admins only; an admin cannot deactivate themself)."""
    require_role(actor, "admin")
    if user_id == actor.id and not active:
        raise AuthError("you cannot deactivate your own account")
    user = session.get(User, user_id)
    if user is None:
        raise AuthError(f"no user {user_id}")
    user.active = active
    if not active:
        revoke_all(session, user.id, "deactivated")


def change_role(session: Session, actor: Account, user_id: int, role: str) -> int:
    """``set_role`` from the app: admins only, and not on their own account (the last admin could lock everyone
    out); returns how many of the account's sessions ended."""
    require_role(actor, "admin")
    if user_id == actor.id:
        raise AuthError("you cannot change your own role; ask another admin or use 'evaltune users set-role'")
    user = session.get(User, user_id)
    if user is None:
        raise AuthError(f"no user {user_id}")
    return set_role(session, user.name, role)[1]


def add_user(session: Session, actor: Account, name: str, role: str, password: str) -> Account:
    """``create_user`` on behalf of ``actor``, who must be an admin."""
    require_role(actor, "admin")
    return create_user(session, name, role, password)


def read_identities(path: Path) -> dict[str, str]:
    """Who may sign in through the identity provider: the file maps a verified email address to an account name
    (``alice@example.org: alice``); the account's role applies. No file: nobody may sign in that way. Raises
    ``AuthError`` naming the file and the fix when it is not such a mapping."""
    if not path.exists():
        return {}
    try:
        mapping = textfiles.read_yaml(path)
    except textfiles.FileProblem as problem:
        raise AuthError(str(problem)) from None
    if mapping is None:
        return {}
    if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
        raise AuthError(f"{path}: write one 'email: account name' line per person, e.g. 'alice@example.org: alice'")
    return {email.strip().lower(): name.strip() for email, name in mapping.items()}


def identity_account(session: Session, claims: Mapping[str, Any], identities: Mapping[str, str]) -> Account:
    """The account an identity provider's claims (``st.user``) map to through ``identities`` (``read_identities``).

    Raises ``AuthError`` for claims with no email, an email the provider says is unverified, an email that is
    not in the mapping, or one mapped to an account that does not exist or is deactivated: no access."""
    email = str(claims.get("email") or "").strip().lower()
    if not email:
        raise AuthError("the identity provider sent no email address; ask an admin to check its scopes (email)")
    if claims.get("email_verified") is False:
        raise AuthError(f"the identity provider has not verified {email}; verify it there first")
    name = identities.get(email)
    if name is None:
        raise AuthError(f"{email} has no evaltune account; an admin adds '{email}: NAME' to the identities file")
    user = session.execute(select(User).where(User.name == name)).scalar_one_or_none()
    if user is None or not user.active:
        raise AuthError(f"{email} maps to {name!r}, which is not an active account; ask an admin")
    return Account(user.id, user.name, user.role)
