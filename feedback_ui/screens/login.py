"""The log-in form: the only thing the app shows to someone not signed in.

Failed attempts are counted in the store (``auth.log_in``), per name and per client address, so the limit
holds across browser sessions, tabs and server processes. A successful log-in starts a stored session whose
cookie keeps the browser signed in across reloads (``app_state.sign_in``).

When the team's identity provider is configured for Streamlit's ``st.login`` (``[auth]`` in
``.streamlit/secrets.toml``), the page also offers "Sign in with <provider>"; the provider's verified email
address is then mapped to an evaltune account by the identities file (``auth.identity_account``), and an
identity that maps to no active account gets no access.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from evaltune import settings
from evaltune.feedback_ui import app_state
from evaltune.feedback_ui.auth import AuthError, identity_account, log_in, read_identities
from evaltune.feedback_ui.safe_text import inline


def client_address() -> str | None:
    """The browser's IP address as Streamlit sees it; None on loopback (Streamlit hides it there) or unknown."""
    try:
        address = st.context.ip_address
    except Exception:  # an older Streamlit, or no client connection
        return None
    return address if isinstance(address, str) else None  # streamlit.testing hands out a mock


def _client() -> str:
    """Where a session was started, for the admin's list: the address (when known) and the browser."""
    try:
        agent = st.context.headers.get("User-Agent") or ""
    except Exception:  # no client connection (streamlit.testing)
        agent = ""
    return f"{client_address() or 'local'} {agent}".strip()[:200]


def providers() -> list[str | None]:
    """The identity providers ``st.login`` is configured for: None for ``[auth]``'s own, else their names."""
    try:
        auth: Any = st.secrets.get("auth")
    except Exception:  # no secrets file, or one that does not parse: no provider
        return []
    if not hasattr(auth, "keys"):
        return []
    named: list[str | None] = [str(key) for key in auth if hasattr(auth[key], "keys")]
    return ([None] if "client_id" in auth else []) + named


def _identity_sign_in() -> bool:
    """Sign in the identity the provider vouched for, if any; True when the page is done."""
    if not st.user.get("is_logged_in"):
        return False
    claims = {"email": st.user.get("email"), "email_verified": st.user.get("email_verified")}
    try:
        identities = read_identities(settings.identities_file())
        account = app_state.read(lambda s: identity_account(s, claims, identities))
    except AuthError as refused:
        st.error(f"No access: {inline(refused)}")
        if st.button("Sign out of the identity provider", key="provider_logout"):
            st.logout()
        return True
    app_state.sign_in(account.id, _client())
    st.rerun()
    return True


def render() -> None:
    st.title("evaltune ratings")
    if _identity_sign_in():
        return
    for provider in providers():
        label = f"Sign in with {provider}" if provider else "Sign in with your identity provider"
        if st.button(label, key=f"provider_{provider or 'default'}"):
            st.login(provider)
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
    app_state.sign_in(account.id, _client())
    st.rerun()
