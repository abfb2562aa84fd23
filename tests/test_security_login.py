"""Log-in rate limiting that holds across browser sessions: stored attempts, per name and per client address.

A script that opens a fresh Streamlit session for every guess meets the same limit as one that reuses a
session; once locked, the password is not even checked (no argon2 cost), and the message says when to retry.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from evaltune.db import Store
from evaltune.db.base import utcnow
from evaltune.db.ratings import LoginAttempt
from evaltune.feedback_ui import auth
from evaltune.feedback_ui.auth import AuthError, LockedOut, LoginLimits, log_in
from tests.conftest import invoke_main
from tests.fixtures.feedback_seed import PASSWORD, seed_users

APP = str(Path(__file__).resolve().parent.parent / "feedback_ui" / "app.py")
TIMEOUT = 60
LIMITS = LoginLimits()  # the defaults: 5 failures per name, 20 per address, in 15 minutes


@pytest.fixture(autouse=True)
def _annotators(store: Store) -> None:
    with store.session_scope() as s:
        seed_users(s, {"alice": "annotator", "bob": "annotator"})


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every argon2 password check made, as it is made (the app runs in this process under AppTest)."""
    made: list[str] = []
    real = auth.verify_password

    def counting(password_hash: str, password: str) -> bool:
        made.append(password)
        return real(password_hash, password)

    monkeypatch.setattr(auth, "verify_password", counting)
    return made


def _fresh_session_login(name: str, password: str) -> AppTest:
    """A new browser session (nothing carried over) that submits the log-in form once."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.text_input(key="login_name").input(name)
    at.text_input(key="login_password").input(password)
    next(b for b in at.button if b.label == "Log in").click()
    return at.run()


def _signed_in(at: AppTest) -> bool:
    return len(at.sidebar.radio) > 0


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_fresh_sessions_do_not_bypass_the_limit(store: Store, checks: list[str]) -> None:
    for attempt in range(LIMITS.max_failures):
        at = _fresh_session_login("alice", f"guess {attempt}")
        assert [e.value for e in at.error] == ["wrong name or password"] and not _signed_in(at)
    assert len(checks) == LIMITS.max_failures
    at = _fresh_session_login("alice", PASSWORD)  # the right password, in yet another fresh session
    assert not _signed_in(at)
    message = at.error[0].value.replace("\\", "")  # shown as markdown, with its punctuation escaped
    assert message.startswith("too many failed log-ins; try again after ") and "UTC (in 15 minutes)" in message
    assert len(checks) == LIMITS.max_failures  # refused before argon2 was asked
    assert PASSWORD not in message
    at = _fresh_session_login("bob", PASSWORD)  # another name is not locked
    assert _signed_in(at) and not at.error
    with store.session_scope() as s:
        outcomes = s.execute(select(LoginAttempt.name, LoginAttempt.outcome).order_by(LoginAttempt.id)).all()
    assert outcomes == [("alice", "failed")] * 5 + [("alice", "refused"), ("bob", "ok")]


def test_the_lock_lifts_when_the_failures_leave_the_window(store: Store, checks: list[str]) -> None:
    start = utcnow()
    for minute in range(LIMITS.max_failures):
        with pytest.raises(AuthError, match="wrong name or password"):
            log_in(store, "alice", "nope", now=start + timedelta(minutes=minute))
    with pytest.raises(LockedOut) as locked:
        log_in(store, "alice", PASSWORD, now=start + timedelta(minutes=5))
    # The oldest of the last five failures (at start) leaves the 15-minute window at start + 15 min.
    assert locked.value.retry_at == start + LIMITS.window
    assert "in 10 minutes" in str(locked.value)
    with pytest.raises(LockedOut):  # refused attempts do not extend the lock
        log_in(store, "alice", PASSWORD, now=start + timedelta(minutes=14))
    assert log_in(store, "alice", PASSWORD, now=start + timedelta(minutes=15, seconds=1)).name == "alice"
    assert len(checks) == LIMITS.max_failures + 1
    later = start + timedelta(minutes=16)
    for second in range(LIMITS.max_failures - 1):  # a success resets the count for the name
        with pytest.raises(AuthError, match="wrong name"):
            log_in(store, "alice", "nope", now=later + timedelta(seconds=second))
    assert log_in(store, "alice", PASSWORD, now=later + timedelta(seconds=30)).name == "alice"


def test_unknown_names_are_limited_like_real_ones(store: Store) -> None:
    for _ in range(LIMITS.max_failures):
        with pytest.raises(AuthError, match="wrong name or password"):
            log_in(store, "nobody", "x")
    with pytest.raises(LockedOut):
        log_in(store, "nobody", "x")


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_one_address_spraying_many_names_is_limited(store: Store, checks: list[str]) -> None:
    limits = LoginLimits(max_failures=5, max_client_failures=6)
    for i in range(6):
        with pytest.raises(AuthError, match="wrong name"):
            log_in(store, f"user{i}", "Winter2026!", client="203.0.113.9", limits=limits)
    with pytest.raises(LockedOut):
        log_in(store, "alice", PASSWORD, client="203.0.113.9", limits=limits)
    assert log_in(store, "alice", PASSWORD, client="198.51.100.7", limits=limits).name == "alice"
    # Logging in to an account of its own does not reset an address's count.
    with pytest.raises(LockedOut):
        log_in(store, "bob", PASSWORD, client="203.0.113.9", limits=limits)
    assert len(checks) == 6 + 1


def test_parallel_guesses_get_at_most_the_limit_checked(store: Store, checks: list[str]) -> None:
    results: list[Any] = []

    def guess(i: int) -> None:
        try:
            log_in(store, "alice", f"parallel guess {i}")
        except AuthError as error:
            results.append(type(error).__name__)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 12
    assert len(checks) <= LIMITS.max_failures  # the rest were refused unchecked
    assert results.count("LockedOut") >= 12 - LIMITS.max_failures


def test_an_admin_unlocks_a_name_at_once_and_the_failures_stay_recorded(
    store: Store, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(LIMITS.max_failures):
        with pytest.raises(AuthError, match="wrong name or password"):
            log_in(store, "alice", "a guess")
    with pytest.raises(LockedOut):
        log_in(store, "alice", PASSWORD)
    code, out, _err = invoke_main(["users", "unlock", "alice"], monkeypatch, capsys)
    assert code == 0 and out == f"unlocked 'alice': {LIMITS.max_failures} failed log-ins no longer count\n"
    assert log_in(store, "alice", PASSWORD).name == "alice"
    with store.session_scope() as s:
        outcomes = s.execute(select(LoginAttempt.outcome).where(LoginAttempt.name == "alice")
                             .order_by(LoginAttempt.id)).scalars().all()
    assert outcomes == ["unlocked"] * LIMITS.max_failures + ["refused", "ok"]  # kept, no longer counted
    code, out, _err = invoke_main(["users", "unlock", "alice"], monkeypatch, capsys)
    assert code == 0 and out == "'alice' has no failed log-ins to clear\n"
    code, _out, err = invoke_main(["users", "unlock", "alcie"], monkeypatch, capsys)
    assert code == 2 and err == "error: no user 'alcie' (did you mean 'alice'?); see 'evaltune users list'\n"
