"""Streamlit glue shared by every page: the store, the signed-in account, the page guard, flash messages."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import streamlit as st
from sqlalchemy.orm import Session

from evaltune.db.engine import Store, database_url, open_store
from evaltune.feedback_ui.auth import Account, PermissionDenied, load_account, require_role
from evaltune.feedback_ui.safe_text import inline
from evaltune.feedback_ui.transactions import in_transaction

T = TypeVar("T")
USER_KEY = "user_id"


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
    """The signed-in account as stored now; signs out a session whose account was removed or deactivated."""
    user_id = st.session_state.get(USER_KEY)
    if user_id is None:
        return None
    account = read(lambda s: load_account(s, int(user_id)))
    if account is None:
        st.session_state.pop(USER_KEY, None)
    return account


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
