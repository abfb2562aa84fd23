"""Streamlit glue shared by every page: the store, the signed-in account, the page guard, flash messages.

Being signed in is a stored session (``feedback_ui/sessions.py``): this tab keeps the session's id in its
Streamlit session state; a new tab or a reload finds it again through the HttpOnly cookie, which the page gets
by posting a one-time code to the server's own route (``cookie_exchange``) right after the log-in.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TypeVar

import streamlit as st
from sqlalchemy.orm import Session
from streamlit import config

from evaltune.db.engine import Store, database_url, open_store
from evaltune.feedback_ui import sessions
from evaltune.feedback_ui.auth import Account, PermissionDenied, load_account, require_role
from evaltune.feedback_ui.safe_text import inline
from evaltune.feedback_ui.transactions import in_transaction

T = TypeVar("T")
USER_KEY = "user_id"
SESSION_KEY = "session_id"  # the stored session this tab is signed in with
_HANDOVER_KEY = "session_handover"  # the one-time code the page posts, once, for its cookie
_FORGET_KEY = "forget_session_cookie"  # the page should clear the cookie (log-out, or a refused cookie)
_COOKIE_CHECKED_KEY = "session_cookie_checked"  # the cookie of this tab's first request was looked at


@st.cache_resource(show_spinner=False)
def _store_for(url: str) -> Store:
    return open_store(url)


def store() -> Store:
    """The store for ``EVALTUNE_DB_URL`` (or the default SQLite file), opened once per server process."""
    return _store_for(database_url())


def transaction(work: Callable[[Session], T]) -> T:
    """Run ``work`` in one committed transaction, retried on deadlock or a lost race."""
    return in_transaction(store(), work)


def read(work: Callable[[Session], T]) -> T:
    """Run read-only ``work`` in a short session."""
    with store().sessions() as session:
        return work(session)


def current_account() -> Account | None:
    """The signed-in account as stored now, or None (then the log-in form is shown).

    This tab's stored session is checked on every run (one read; a write only every few minutes, to slide its
    expiry): a revoked or expired session, or a deactivated account, signs the tab out at its next click. A
    tab without one (a reload, a new tab) is signed in by its session cookie when the store still honours it.
    """
    session_id = st.session_state.get(SESSION_KEY)
    if session_id is not None:
        signed_in = sessions.resume(store(), session_id=int(session_id))
        if signed_in is None:
            _signed_out()
            return None
        return Account(signed_in.user_id, signed_in.name, signed_in.role)
    user_id = st.session_state.get(USER_KEY)
    if user_id is not None:  # signed in by code, without a stored session (the app's in-process tests)
        account = read(lambda s: load_account(s, int(user_id)))
        if account is None:
            st.session_state.pop(USER_KEY, None)
        return account
    return _from_cookie()


def _from_cookie() -> Account | None:
    if st.session_state.get(_COOKIE_CHECKED_KEY):
        return None  # the cookie is the one this tab's first request sent: it was looked at once already
    st.session_state[_COOKIE_CHECKED_KEY] = True
    token = st.context.cookies.get(sessions.COOKIE_NAME)
    if not token:
        return None
    signed_in = sessions.resume(store(), token=str(token))
    if signed_in is None:
        st.session_state[_FORGET_KEY] = True
        return None
    st.session_state[SESSION_KEY] = signed_in.session_id
    st.session_state[USER_KEY] = signed_in.user_id
    return Account(signed_in.user_id, signed_in.name, signed_in.role)


def _signed_out() -> None:
    st.session_state.clear()
    st.session_state[_COOKIE_CHECKED_KEY] = True
    st.session_state[_FORGET_KEY] = True


def sign_in(user_id: int, client: str | None) -> None:
    """Start a stored session for the account that just logged in, in this tab (nothing carried over from
    before); the next run's ``cookie_exchange`` gives the browser its cookie, so that a reload keeps it signed
    in."""
    session_id, token = sessions.start(store(), user_id, client)
    st.session_state.clear()
    st.session_state[SESSION_KEY] = session_id
    st.session_state[USER_KEY] = user_id
    st.session_state[_COOKIE_CHECKED_KEY] = True
    st.session_state[_HANDOVER_KEY] = sessions.hand_over(token)


def sign_out() -> None:
    """End this tab's stored session (revoked in the store: its cookie no longer signs anyone in) and forget the
    cookie in the browser."""
    session_id = st.session_state.get(SESSION_KEY)
    if session_id is not None:
        sessions.end(store(), int(session_id), "log-out")
    _signed_out()


def cookie_exchange() -> None:
    """The page's part of the session cookie, once per log-in or log-out: post the one-time code for the cookie,
    or ask the server to clear it. The script runs in the browser on the app's own origin (see server.py)."""
    code = st.session_state.pop(_HANDOVER_KEY, None)
    forget = st.session_state.pop(_FORGET_KEY, False)
    if code is None and not forget:
        return
    base = str(config.get_option("server.baseUrlPath") or "").strip("/")
    url = json.dumps(f"/{base}{sessions.COOKIE_ROUTE}" if base else sessions.COOKIE_ROUTE)
    if code is not None:
        request = ('{method: "POST", credentials: "same-origin", headers: {"Content-Type": "application/json"}, '
                   f'body: JSON.stringify({{code: {json.dumps(code)}}})}}')
    else:
        request = '{method: "DELETE", credentials: "same-origin"}'
    st.html(f"<script>fetch({url}, {request});</script>", unsafe_allow_javascript=True)


def guard(*roles: str) -> Account:
    """The signed-in account if it holds one of ``roles``; otherwise shows why and stops the page."""
    try:
        return require_role(current_account(), *roles)
    except PermissionDenied as denied:
        st.error(f"Not allowed: {inline(denied)}")
        st.stop()
        raise  # st.stop() raises; this line keeps type checkers informed


def flash(message: str) -> None:
    """Show ``message`` once, after the next rerun."""
    st.session_state["flash"] = message


def show_flash() -> None:
    message = st.session_state.pop("flash", None)
    if message:
        st.success(message)
