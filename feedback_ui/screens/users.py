"""Users (admins): list accounts with their signed-in browsers, add one, change a role, deactivate or reactivate.

A role change and a deactivation sign the account's browsers out (their stored sessions are revoked), so the
new role applies from the next log-in and a deactivated account keeps no open session."""

from __future__ import annotations

import streamlit as st

from evaltune.db.ratings import ROLES, User
from evaltune.feedback_ui import app_state
from evaltune.feedback_ui.auth import Account, AuthError, add_user, change_role, list_users, set_active
from evaltune.feedback_ui.safe_text import inline
from evaltune.feedback_ui.sessions import live_counts


def render(account: Account) -> None:
    st.header("Users")
    users, signed_in = app_state.read(lambda s: (list_users(s), live_counts(s)))
    st.dataframe([{"id": u.id, "name": u.name, "role": u.role, "active": u.active,
                   "signed in": signed_in.get(u.id, 0), "created": u.created_at.strftime("%Y-%m-%d")}
                  for u in users], hide_index=True)
    _add_form(account)
    others = {u.id: u for u in users if u.id != account.id}
    if others:
        _role_form(account, others)
        _toggle_form(account, others)


def _add_form(account: Account) -> None:
    with st.form("new_user", clear_on_submit=True):
        st.subheader("Add a user")
        name = st.text_input("Name", key="new_user_name")
        role = st.selectbox("Role", ROLES, index=1, key="new_user_role")
        password = st.text_input("Password (8+ characters)", type="password", key="new_user_password")
        added = st.form_submit_button("Add user", type="primary")
    if added:
        try:
            app_state.transaction(lambda s: add_user(s, account, name, str(role), password))
        except AuthError as error:
            st.error(inline(error))
        else:
            app_state.flash("User added.")
            st.rerun()


def _role_form(account: Account, others: dict[int, User]) -> None:
    with st.form("change_role"):
        st.subheader("Change a role")
        user_id = st.selectbox("Account", list(others), format_func=lambda uid: others[uid].name, key="role_user")
        role = st.selectbox("New role", ROLES, key="role_new")
        changed = st.form_submit_button("Change role (signs them out)")
    if changed and user_id is not None:
        target = others[user_id]
        try:
            ended = app_state.transaction(lambda s: change_role(s, account, target.id, str(role)))
        except AuthError as error:
            st.error(inline(error))
        else:
            app_state.flash(f"{target.name} is now a {role}; {ended} browser session(s) signed out.")
            st.rerun()


def _toggle_form(account: Account, others: dict[int, User]) -> None:
    with st.form("toggle_user"):
        user_id = st.selectbox("Account", list(others), format_func=lambda uid: others[uid].name, key="toggle_user")
        toggled = st.form_submit_button("Deactivate / reactivate")
    if toggled and user_id is not None:
        target = others[user_id]
        app_state.transaction(lambda s: set_active(s, account, target.id, not target.active))
        app_state.flash(f"{'Deactivated' if target.active else 'Reactivated'} the account.")
        st.rerun()
