"""Signed-in browsers that survive a reload: a random token in an HttpOnly cookie, only its sha256 in the store.

A log-in (``start``) makes a token with ``secrets.token_urlsafe(32)`` and stores its hash as a ``UserSession``.
The script cannot set an HttpOnly cookie itself (Streamlit's scripts never see the HTTP response), so it hands
the token over (``hand_over``) for a one-time code that the page posts, once, to the small route in
``feedback_ui/server.py``; that route sets the cookie (``cookie_attributes``). A reload starts a new Streamlit
session, which reads the cookie back (``st.context.cookies``) and ``resume``s the stored session by its hash.

A session ends ``idle`` after it was last used, or ``longest`` after its log-in, whichever comes first. Use
moves ``last_seen_at`` and ``expires_at`` forward at most once every ``renew_every``, so a busy rating day
costs a write every few minutes, not one per click. Log-out, a role change, a password reset and deactivation
revoke sessions in the store (``end``, ``revoke_all``): a copied cookie of a revoked or expired session then
gets the log-in form.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from evaltune import settings
from evaltune.db.base import utcnow
from evaltune.db.engine import Store
from evaltune.db.ratings import User, UserSession
from evaltune.feedback_ui.transactions import in_transaction

COOKIE_NAME = "evaltune_session"
COOKIE_ROUTE = "/evaltune/session"  # served by feedback_ui/server.py
# Strict, not Lax: the app reads the cookie on its websocket, which the app's own page opens (same-site), so a
# link from another site costs nothing; Strict also keeps the cookie off any request another site starts.
COOKIE_SAMESITE: Final[Literal["strict"]] = "strict"
REASONS = ("log-out", "role changed", "password reset", "deactivated", "expired")
HANDOVER_SECONDS = 60.0  # how long the page has to post the one-time code


@dataclass(frozen=True)
class SessionPolicy:
    """How long a session lasts; ``from_env`` reads ``EVALTUNE_SESSION_IDLE_HOURS`` (12) and
    ``EVALTUNE_SESSION_MAX_DAYS`` (14)."""

    idle: timedelta = timedelta(hours=12)  # ends this long after it was last used
    longest: timedelta = timedelta(days=14)  # ends this long after its log-in, however busy

    @property
    def renew_every(self) -> timedelta:
        """Use is written to the store at most this often (5 minutes, or a tenth of a short idle time)."""
        return min(timedelta(minutes=5), self.idle / 10)

    @classmethod
    def from_env(cls) -> SessionPolicy:
        lifetimes = settings.session_lifetimes()
        return cls(idle=lifetimes.idle, longest=lifetimes.longest)


@dataclass(frozen=True)
class SignedIn:
    """A live session and the account it signs in, as stored now."""

    session_id: int
    user_id: int
    name: str
    role: str


def token_hash(token: str) -> str:
    """The sha256 (hex) of a session token: what the store keeps instead of the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _expiry(created_at: datetime, now: datetime, policy: SessionPolicy) -> datetime:
    return min(now + policy.idle, created_at + policy.longest)


def start(store: Store, user_id: int, client: str | None = None, policy: SessionPolicy | None = None,
          now: datetime | None = None) -> tuple[int, str]:
    """Store a new session for ``user_id``; returns its id and the token for the browser (kept nowhere else)."""
    policy = policy or SessionPolicy.from_env()
    now = now or utcnow()
    token = secrets.token_urlsafe(32)

    def add(session: Session) -> int:
        row = UserSession(user_id=user_id, token_hash=token_hash(token), created_at=now, last_seen_at=now,
                          expires_at=_expiry(now, now, policy), client=client[:200] if client else None)
        session.add(row)
        session.flush()
        return row.id

    return in_transaction(store, add), token


def _find(session: Session, session_id: int | None, token: str | None) -> tuple[UserSession, User] | None:
    query = select(UserSession, User).join(User, User.id == UserSession.user_id)
    if session_id is not None:
        query = query.where(UserSession.id == session_id)
    elif token:
        query = query.where(UserSession.token_hash == token_hash(token))
    else:
        return None
    row = session.execute(query).one_or_none()
    return None if row is None else (row[0], row[1])


def resume(store: Store, *, session_id: int | None = None, token: str | None = None,
           policy: SessionPolicy | None = None, now: datetime | None = None) -> SignedIn | None:
    """The live session with this id (this browser tab's) or this token (a cookie), renewed when due; None if
    there is none, or it was revoked, has expired (then marked so) or its account is deactivated.

    One read per call; a write only when the session is due for renewal or has just expired."""
    policy = policy or SessionPolicy.from_env()
    now = now or utcnow()
    with store.sessions() as session:
        found = _find(session, session_id, token)
    if found is None:
        return None
    row, user = found
    if row.revoked_at is not None or not user.active:
        return None
    if now >= min(row.expires_at, row.created_at + policy.longest):
        in_transaction(store, lambda s: _revoke(s, UserSession.id == row.id, "expired", now))
        return None
    if now - row.last_seen_at >= policy.renew_every:
        in_transaction(store, lambda s: _renew(s, row.id, _expiry(row.created_at, now, policy), now))
    return SignedIn(row.id, user.id, user.name, user.role)


def _renew(session: Session, session_id: int, expires_at: datetime, now: datetime) -> None:
    session.execute(update(UserSession).where(UserSession.id == session_id, UserSession.revoked_at.is_(None))
                    .values(last_seen_at=now, expires_at=expires_at))


def _revoke(session: Session, which: ColumnElement[bool], because: str, now: datetime) -> int:
    if because not in REASONS:
        raise ValueError(f"unknown reason {because!r}; one of {', '.join(REASONS)}")
    ended = session.execute(update(UserSession).where(which, UserSession.revoked_at.is_(None))
                            .values(revoked_at=now, revoked_because=because).returning(UserSession.id))
    return len(ended.scalars().all())


def end(store: Store, session_id: int, because: str = "log-out", now: datetime | None = None) -> bool:
    """Revoke one session (log-out); False if it had ended already."""
    return in_transaction(store, lambda s: _revoke(s, UserSession.id == session_id, because, now or utcnow())) > 0


def revoke_all(session: Session, user_id: int, because: str, now: datetime | None = None) -> int:
    """Revoke every live session of ``user_id`` inside the caller's transaction (a role change, a password reset,
    a deactivation); returns how many ended."""
    return _revoke(session, UserSession.user_id == user_id, because, now or utcnow())


def live_counts(session: Session, now: datetime | None = None) -> dict[int, int]:
    """How many live (not revoked, not expired) sessions each user has, for the admin's list."""
    rows = session.execute(
        select(UserSession.user_id, func.count())
        .where(UserSession.revoked_at.is_(None), UserSession.expires_at > (now or utcnow()))
        .group_by(UserSession.user_id)
    ).all()
    return {user_id: count for user_id, count in rows}


# One-time codes that the page trades for its cookie: kept in this server process only (the script and the
# route run in the same process), by the code's hash, for HANDOVER_SECONDS.
_handovers: dict[str, tuple[str, float]] = {}
_handovers_lock = threading.Lock()


def hand_over(token: str) -> str:
    """A one-time code for ``token``, valid for ``HANDOVER_SECONDS``: the page posts it to get its cookie, so the
    token itself never appears in the page, a URL or the Streamlit session state."""
    code = secrets.token_urlsafe(32)
    with _handovers_lock:
        _forget_old_handovers()
        _handovers[token_hash(code)] = (token, time.monotonic() + HANDOVER_SECONDS)
    return code


def take_over(code: str) -> str | None:
    """The token handed over for ``code``, once; None for an unknown, used or expired code."""
    with _handovers_lock:
        _forget_old_handovers()
        entry = _handovers.pop(token_hash(code), None)
    return entry[0] if entry else None


def _forget_old_handovers() -> None:
    now = time.monotonic()
    for key in [key for key, (_, deadline) in _handovers.items() if deadline <= now]:
        del _handovers[key]


@dataclass(frozen=True)
class CookieAttributes:
    """What the session cookie is sent with: HttpOnly and SameSite always, Secure over https."""

    path: str
    max_age: int
    secure: bool
    httponly: bool = True
    samesite: Literal["strict"] = COOKIE_SAMESITE


def cookie_attributes(base_path: str, https: bool, policy: SessionPolicy | None = None) -> CookieAttributes:
    """The cookie's attributes for an app served under ``base_path``: it lives as long as the longest session
    (the store ends it sooner when it is idle or revoked)."""
    policy = policy or SessionPolicy.from_env()
    path = "/" + base_path.strip("/") if base_path.strip("/") else "/"
    return CookieAttributes(path=path, max_age=int(policy.longest.total_seconds()), secure=https)
