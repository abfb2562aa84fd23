"""Sessions in real Chromium through ``evaltune ui``: a reload keeps the annotator signed in; the cookie is
HttpOnly and SameSite=Strict; log-out, expiry and a role change end the session, and a copied cookie of an
ended session gets the log-in form. Skipped where Chromium or Playwright is missing, except in CI."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from evaltune.db import Store, open_store
from evaltune.db.base import utcnow
from evaltune.db.ratings import UserSession
from evaltune.feedback_ui.sessions import COOKIE_NAME, token_hash
from tests.conftest import invoke_main
from tests.fixtures.browser import WAIT_MS, launch, log_in, playwright_api, serve_app, settled
from tests.fixtures.feedback_seed import PASSWORD, seed_users

__all__ = ["playwright_api"]  # the module-scoped fixture, from tests.fixtures.browser

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """``evaltune ui`` over a SQLite store with an annotator and a viewer; yields (base URL, store URL)."""
    folder = tmp_path_factory.mktemp("sessions_browser")
    db_url = f"sqlite:///{folder / 'sessions.db'}"
    store = open_store(db_url)
    with store.session_scope() as s:
        seed_users(s, {"ann": "annotator", "bea": "viewer"})
    store.close()
    with serve_app(db_url, folder) as url:
        yield url, db_url


@pytest.fixture
def browser(playwright_api: Any) -> Iterator[Any]:
    opened = launch(playwright_api)
    yield opened
    opened.close()


def _session_cookie(context: Any) -> dict[str, Any] | None:
    """The session cookie once the page has traded its one-time code for it (a fetch after the log-in)."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while time.monotonic() < deadline:
        cookie = next((c for c in context.cookies() if c["name"] == COOKIE_NAME), None)
        if cookie is not None:
            return cookie
        time.sleep(0.2)
    return None


def _sessions(db_url: str, name: str) -> list[UserSession]:
    from evaltune.db.ratings import User

    store = open_store(db_url)
    try:
        with store.session_scope() as s:
            rows = s.execute(select(UserSession).join(User, User.id == UserSession.user_id)
                             .where(User.name == name).order_by(UserSession.id)).scalars().all()
            s.expunge_all()
            return list(rows)
    finally:
        store.close()


def _shows_log_in_form(page: Any, expect: Any) -> None:
    expect(page.get_by_role("button", name="Log in")).to_be_visible(timeout=WAIT_MS)
    expect(page.get_by_text("Signed in as")).to_have_count(0)


def test_a_reload_keeps_the_session_and_log_out_ends_it(app: tuple[str, str], browser: Any) -> None:
    from playwright.sync_api import expect

    url, db_url = app
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    log_in(page, expect, url, "ann", PASSWORD)
    cookie = _session_cookie(context)
    assert cookie is not None, "the page never got its session cookie"
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert cookie["secure"] is False  # served over plain http here; Secure is set over https
    assert cookie["expires"] > time.time() + timedelta(days=13).total_seconds()  # lives as long as the longest
    assert COOKIE_NAME not in page.evaluate("document.cookie")  # HttpOnly: no script can read it
    [stored] = _sessions(db_url, "ann")
    assert stored.token_hash == token_hash(cookie["value"]) and cookie["value"] not in stored.token_hash
    assert stored.revoked_at is None and stored.client and "Chrome" in stored.client

    page.reload()
    settled(page, expect, "Signed in as")  # no log-in form: the cookie signed the new Streamlit session in
    assert len(_sessions(db_url, "ann")) == 1  # the same session, not a new one

    stolen = cookie.copy()
    page.get_by_role("button", name="Log out").click()
    _shows_log_in_form(page, expect)
    [ended] = _sessions(db_url, "ann")
    assert ended.revoked_because == "log-out"
    deadline = time.monotonic() + 20
    while any(c["name"] == COOKIE_NAME for c in context.cookies()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(c["name"] == COOKIE_NAME for c in context.cookies())  # the page asked the server to clear it
    page.reload()
    _shows_log_in_form(page, expect)

    # The cookie copied before the log-out, replayed from another browser: the store refuses it.
    thief = browser.new_context()
    thief.add_cookies([{key: stolen[key] for key in ("name", "value", "domain", "path", "httpOnly", "sameSite")}])
    thief_page = thief.new_page()
    thief_page.goto(url)
    _shows_log_in_form(thief_page, expect)


def test_an_expired_session_or_a_role_change_signs_out(app: tuple[str, str], browser: Any,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from playwright.sync_api import expect

    url, db_url = app
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    log_in(page, expect, url, "bea", PASSWORD)
    assert _session_cookie(context) is not None
    store: Store = open_store(db_url)
    with store.session_scope() as s:  # as if twelve idle hours had passed
        s.execute(update(UserSession).values(expires_at=utcnow() - timedelta(minutes=1)))
    store.close()
    page.reload()
    _shows_log_in_form(page, expect)
    assert [s.revoked_because for s in _sessions(db_url, "bea")] == ["expired"]

    log_in(page, expect, url, "bea", PASSWORD)
    assert _session_cookie(context) is not None
    monkeypatch.setenv("EVALTUNE_DB_URL", db_url)
    code, out, _err = invoke_main(["users", "set-role", "bea", "--role", "annotator"], monkeypatch, capsys)
    assert code == 0 and out == "'bea' is now an annotator (was a viewer); 1 browser session signed out\n"
    page.get_by_text("Runs", exact=True).click()  # the next click, no reload: the revoked session signs out
    _shows_log_in_form(page, expect)
    page.reload()
    _shows_log_in_form(page, expect)
    assert [s.revoked_because for s in _sessions(db_url, "bea")] == ["expired", "role changed"]
