"""The log-in form: the only thing the app shows to someone not signed in.

Failed attempts are counted in the store (``auth.log_in``), per name and per client address, so the limit
holds across browser sessions, tabs and server processes.
"""

from __future__ import annotations

import streamlit as st

from evaltune.feedback_ui import app_state
from evaltune.feedback_ui.auth import AuthError, log_in
from evaltune.feedback_ui.safe_text import inline


def client_address() -> str | None:
    """The browser's IP address as Streamlit sees it; None on loopback (Streamlit hides it there) or unknown."""
    try:
        address = st.context.ip_address
    except Exception:  # an older Streamlit, or no client connection
        return None
    return address if isinstance(address, str) else None  # streamlit.testing hands out a mock


def render() -> None:
    st.title("evaltune ratings")
    with st.form("login"):
        name = st.text_input("Name", key="login_name")
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Log in", type="primary")
    if not submitted:
        return
    try:
        account = log_in(app_state.store(), name, password, client_address())
    except AuthError as error:
        st.error(inline(error))
        return
    st.session_state.clear()  # a fresh session for the new account: nothing carried over from before
    st.session_state[app_state.USER_KEY] = account.id
    st.rerun()
