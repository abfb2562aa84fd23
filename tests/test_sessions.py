"""Stored sessions: only the token's hash is kept, expiry (idle and longest), renewal at most every few minutes,
revocation on log-out, role change, password reset and deactivation (through the command line where a user does
it there), the cookie route's refusals, and sign-in through an identity provider mapped to accounts."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select
from starlette.applications import Starlette
from starlette.testclient import TestClient
from streamlit.testing.v1 import AppTest

from evaltune.db import Store
from evaltune.db.base import utcnow
from evaltune.db.ratings import UserSession
from evaltune.feedback_ui import auth, session_cookie, sessions
from evaltune.feedback_ui.auth import Account, AuthError, LockedOut, log_in
from evaltune.feedback_ui.sessions import SessionPolicy
from tests.conftest import invoke_main
from tests.fixtures.feedback_seed import PASSWORD, seed_users

APP = str(Path(__file__).resolve().parent.parent / "feedback_ui" / "app.py")
POLICY = SessionPolicy(idle=timedelta(hours=1), longest=timedelta(days=1))


@pytest.fixture
def accounts(store: Store) -> dict[str, Account]:
    with store.session_scope() as s:
        return seed_users(s, {"boss": "admin", "ann": "annotator", "bea": "annotator"})


def _row(store: Store, session_id: int) -> UserSession:
    with store.session_scope() as s:
        row = s.get(UserSession, session_id)
        assert row is not None
        s.expunge(row)
        return row


@pytest.fixture
def writes(store: Store) -> Iterator[list[str]]:
    """Every UPDATE the store runs while the test does."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE"):
            seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    yield seen
    event.remove(store.engine, "before_cursor_execute", record)


def test_only_the_tokens_hash_is_stored(store: Store, accounts: dict[str, Account]) -> None:
    session_id, token = sessions.start(store, accounts["ann"].id, "203.0.113.9 Firefox", POLICY)
    assert len(token) >= 43  # 32 random bytes, url-safe base64
    row = _row(store, session_id)
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {str(value) for value in vars(row).values()}
    assert row.client == "203.0.113.9 Firefox" and row.expires_at == row.created_at + POLICY.idle
    other_id, other = sessions.start(store, accounts["ann"].id, None, POLICY)
    assert other != token and other_id != session_id
    found = sessions.resume(store, token=token, policy=POLICY)
    assert found is not None and (found.session_id, found.name, found.role) == (session_id, "ann", "annotator")
    assert sessions.resume(store, token=token[:-1] + ("A" if token[-1] != "A" else "B"), policy=POLICY) is None


def test_a_session_ends_when_idle_and_at_its_longest(store: Store, accounts: dict[str, Account]) -> None:
    start = utcnow()
    idle_id, _ = sessions.start(store, accounts["ann"].id, None, POLICY, now=start)
    assert sessions.resume(store, session_id=idle_id, policy=POLICY, now=start + timedelta(minutes=59)) is not None
    # Used at 0:59, so it now lasts until 1:59; at 2:00 it has been idle for over an hour.
    assert sessions.resume(store, session_id=idle_id, policy=POLICY, now=start + timedelta(minutes=120)) is None
    assert _row(store, idle_id).revoked_because == "expired"
    busy_id, _ = sessions.start(store, accounts["ann"].id, None, POLICY, now=start)
    for half_hours in range(1, 48):  # used every half hour for a whole day
        assert sessions.resume(store, session_id=busy_id, policy=POLICY,
                               now=start + timedelta(minutes=30 * half_hours)) is not None
    assert _row(store, busy_id).expires_at == start + POLICY.longest  # the slide stops at the longest
    assert sessions.resume(store, session_id=busy_id, policy=POLICY, now=start + POLICY.longest) is None


def test_renewal_writes_at_most_every_few_minutes(store: Store, accounts: dict[str, Account],
                                                  writes: list[str]) -> None:
    start = utcnow()
    session_id, token = sessions.start(store, accounts["ann"].id, None, POLICY, now=start)
    assert POLICY.renew_every == timedelta(minutes=5)
    for seconds in range(0, 300, 10):  # a click every ten seconds for five minutes: no write
        assert sessions.resume(store, token=token, policy=POLICY, now=start + timedelta(seconds=seconds))
    assert writes == [] and _row(store, session_id).last_seen_at == start
    assert sessions.resume(store, session_id=session_id, policy=POLICY, now=start + timedelta(minutes=5))
    assert len(writes) == 1
    row = _row(store, session_id)
    assert row.last_seen_at == start + timedelta(minutes=5)
    assert row.expires_at == start + timedelta(minutes=5) + POLICY.idle


def test_log_out_role_change_reset_and_deactivation_revoke(
    store: Store, accounts: dict[str, Account], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ann, bea = accounts["ann"].id, accounts["bea"].id
    tab, _ = sessions.start(store, ann, None, POLICY)
    other_tab, _ = sessions.start(store, ann, None, POLICY)
    assert sessions.end(store, tab) is True and sessions.end(store, tab) is False
    assert sessions.resume(store, session_id=tab, policy=POLICY) is None
    assert sessions.resume(store, session_id=other_tab, policy=POLICY) is not None  # log-out ends one tab only

    code, out, _ = invoke_main(["users", "set-role", "ann", "--role", "viewer"], monkeypatch, capsys)
    assert code == 0 and out == "'ann' is now a viewer (was an annotator); 1 browser session signed out\n"
    code, out, _ = invoke_main(["users", "set-role", "ann", "--role", "viewer"], monkeypatch, capsys)
    assert code == 0 and out == "'ann' is already a viewer\n"

    reset, _ = sessions.start(store, ann, None, POLICY)
    monkeypatch.setattr("sys.stdin", io.StringIO("a brand new password\n"))
    code, out, _ = invoke_main(["users", "reset-password", "ann", "--password-stdin"], monkeypatch, capsys)
    assert code == 0 and out == "new password set for 'ann'\n"

    gone, _ = sessions.start(store, bea, None, POLICY)
    kept, _ = sessions.start(store, accounts["boss"].id, None, POLICY)
    with store.session_scope() as s:
        auth.set_active(s, accounts["boss"], bea, False)
    reasons = {row_id: _row(store, row_id).revoked_because for row_id in (tab, other_tab, reset, gone, kept)}
    assert reasons == {tab: "log-out", other_tab: "role changed", reset: "password reset", gone: "deactivated",
                       kept: None}
    code, out, _ = invoke_main(["users", "list"], monkeypatch, capsys)
    assert code == 0 and "boss" in out and "1 browser session" in out and "0 browser sessions" in out


def test_reset_password_and_unlock_on_the_command_line(
    store: Store, accounts: dict[str, Account], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    limits = auth.LoginLimits()
    for _ in range(limits.max_failures):
        with pytest.raises(AuthError):
            log_in(store, "ann", "a guess", limits=limits)
    with pytest.raises(LockedOut):
        log_in(store, "ann", PASSWORD, limits=limits)
    monkeypatch.setattr("sys.stdin", io.StringIO("another long one\n"))
    code, out, _ = invoke_main(["users", "reset-password", "ann", "--password-stdin"], monkeypatch, capsys)
    assert code == 0 and out == "new password set for 'ann'; 5 failed log-ins no longer count\n"
    with pytest.raises(AuthError, match="wrong name or password"):
        log_in(store, "ann", PASSWORD, limits=limits)  # the old password no longer works, and the lock is gone
    assert log_in(store, "ann", "another long one", limits=limits).name == "ann"
    for _ in range(limits.max_failures):
        with pytest.raises(AuthError):
            log_in(store, "bea", "a guess", limits=limits)
    code, out, _ = invoke_main(["users", "unlock", "bea"], monkeypatch, capsys)
    assert code == 0 and out == "unlocked 'bea': 5 failed log-ins no longer count\n"
    assert log_in(store, "bea", PASSWORD, limits=limits).name == "bea"
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    code, _, err = invoke_main(["users", "reset-password", "ann", "--password-stdin"], monkeypatch, capsys)
    assert code == 2 and err == "error: the password must have at least 8 characters\n"


def test_an_admin_cannot_change_their_own_role_in_the_app(store: Store, accounts: dict[str, Account]) -> None:
    with store.session_scope() as s, pytest.raises(AuthError, match="cannot change your own role"):
        auth.change_role(s, accounts["boss"], accounts["boss"].id, "viewer")
    with store.session_scope() as s, pytest.raises(auth.PermissionDenied):
        auth.change_role(s, accounts["ann"], accounts["bea"].id, "admin")
    ann_tab, _ = sessions.start(store, accounts["ann"].id, None, POLICY)
    with store.session_scope() as s:
        assert auth.change_role(s, accounts["boss"], accounts["ann"].id, "viewer") == 1
    assert _row(store, ann_tab).revoked_because == "role changed"


def test_a_one_time_code_is_traded_once_for_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    code = sessions.hand_over("the-token")
    assert code != "the-token" and sessions.take_over(code) == "the-token"
    assert sessions.take_over(code) is None  # once
    late = sessions.hand_over("later")
    clock = sessions.time.monotonic() + sessions.HANDOVER_SECONDS + 1
    monkeypatch.setattr(sessions.time, "monotonic", lambda: clock)
    assert sessions.take_over(late) is None


def _client(https: bool = False) -> TestClient:
    return TestClient(Starlette(routes=[session_cookie.route("")]),
                      base_url="https://app.example" if https else "http://app.example")


SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}


def test_the_cookie_route_sets_an_httponly_strict_cookie_for_a_code_once() -> None:
    client = _client()
    answer = client.post("/evaltune/session", json={"code": sessions.hand_over("tok")}, headers=SAME_ORIGIN)
    assert answer.status_code == 204
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("evaltune_session=tok;") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/" in cookie and f"Max-Age={14 * 24 * 3600}" in cookie and "Secure" not in cookie
    secure = _client(https=True).post("/evaltune/session", json={"code": sessions.hand_over("tok")},
                                      headers=SAME_ORIGIN)
    assert "Secure" in secure.headers["set-cookie"]
    cleared = client.delete("/evaltune/session", headers=SAME_ORIGIN)
    assert cleared.status_code == 204 and 'evaltune_session="";' in cleared.headers["set-cookie"]
    assert "Max-Age=0" in cleared.headers["set-cookie"]


@pytest.mark.parametrize(("headers", "body", "status"), [
    ({"Sec-Fetch-Site": "cross-site"}, {"code": "x"}, 403),  # another site's page
    ({}, {"code": "x"}, 403),  # no browser said where it came from
    ({"Origin": "https://evil.example"}, {"code": "x"}, 403),
    (SAME_ORIGIN, {"code": "not a code"}, 403),
    (SAME_ORIGIN, ["code"], 403),
])
def test_the_cookie_route_refuses_other_origins_and_unknown_codes(headers: dict[str, str], body: Any,
                                                                  status: int) -> None:
    answer = _client().post("/evaltune/session", json=body, headers=headers)
    assert answer.status_code == status and "set-cookie" not in answer.headers


def test_the_cookie_route_wants_json_from_the_same_origin() -> None:
    code = sessions.hand_over("tok")
    form = _client().post("/evaltune/session", data={"code": code}, headers={"Origin": "http://app.example"})
    assert form.status_code == 415  # a cross-site form post cannot send JSON without a preflight
    assert _client().post("/evaltune/session", json={"code": code}, headers={"Origin": "http://app.example"}
                          ).status_code == 204


def test_identities_map_verified_emails_to_active_accounts(store: Store, accounts: dict[str, Account],
                                                           tmp_path: Path) -> None:
    mapping_file = tmp_path / "identities.yaml"
    mapping_file.write_text("Ann@Example.org: ann\nbea@example.org: bea\nghost@example.org: nobody\n")
    identities = auth.read_identities(mapping_file)
    with store.session_scope() as s:
        auth.set_active(s, accounts["boss"], accounts["bea"].id, False)
    with store.session_scope() as s:
        assert auth.identity_account(s, {"email": "ann@example.org", "email_verified": True}, identities) == \
            accounts["ann"]
        refusals = {
            "stranger@example.org": {"email": "stranger@example.org"},
            "not verified": {"email": "ann@example.org", "email_verified": False},
            "not an active account": {"email": "bea@example.org"},
            "nobody": {"email": "ghost@example.org"},
            "no email": {},
        }
        for words, claims in refusals.items():
            with pytest.raises(AuthError, match=words):
                auth.identity_account(s, claims, identities)
    assert auth.read_identities(tmp_path / "missing.yaml") == {}  # no file: nobody signs in that way
    (tmp_path / "bad.yaml").write_text("- ann@example.org\n")
    with pytest.raises(AuthError, match=r"bad\.yaml: write one 'email: account name' line per person"):
        auth.read_identities(tmp_path / "bad.yaml")


def test_the_log_in_page_offers_the_configured_identity_providers(store: Store) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert [b.label for b in at.button] == ["Log in"]  # none configured: the password form only
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32,
                          "okta": {"client_id": "id", "client_secret": "s",
                                   "server_metadata_url": "https://okta.example/.well-known/openid-configuration"}}
    at.run()
    assert [b.label for b in at.button] == ["Sign in with okta", "Log in"]


def test_a_log_in_through_the_form_stores_a_session(store: Store, accounts: dict[str, Account]) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.text_input(key="login_name").input("ann")
    at.text_input(key="login_password").input(PASSWORD)
    next(b for b in at.button if b.label == "Log in").click()
    at.run()
    assert len(at.sidebar.radio) == 1
    with store.session_scope() as s:
        rows = s.execute(select(UserSession)).scalars().all()
        assert [(r.user_id, r.revoked_at) for r in rows] == [(accounts["ann"].id, None)]
    assert at.session_state["session_id"] == rows[0].id
    next(b for b in at.button if b.label == "Log out").click()
    at.run()
    assert [b.label for b in at.button] == ["Log in"]
    with store.session_scope() as s:
        assert s.execute(select(UserSession.revoked_because)).scalar_one() == "log-out"


def test_an_admin_changes_a_role_in_the_users_page_and_signs_them_out(store: Store,
                                                                       accounts: dict[str, Account]) -> None:
    ann_tab, _ = sessions.start(store, accounts["ann"].id, None, POLICY)
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["page"] = "users"
    at.run()
    at.text_input(key="login_name").input("boss")
    at.text_input(key="login_password").input(PASSWORD)
    next(b for b in at.button if b.label == "Log in").click()
    at.run()
    assert "signed in" in at.dataframe[0].value.columns
    at.selectbox(key="role_user").select(accounts["ann"].id)
    at.selectbox(key="role_new").select("viewer")
    next(b for b in at.button if b.label == "Change role (signs them out)").click()
    at.run()
    assert [s.value for s in at.success] == ["ann is now a viewer; 1 browser session(s) signed out."]
    assert _row(store, ann_tab).revoked_because == "role changed"
    with store.session_scope() as s:
        assert auth.find_user(s, "ann").role == "viewer"
