"""Users (admins): list accounts, add one, deactivate or reactivate."""

from __future__ import annotations

import streamlit as st

from evaltune.db.ratings import ROLES
from evaltune.feedback_ui import app_state
from evaltune.feedback_ui.auth import Account, AuthError, add_user, list_users, set_active
from evaltune.feedback_ui.safe_text import inline


def render(account: Account) -> None:
    st.header("Users")
    users = app_state.read(lambda s: list_users(s))
    st.dataframe([{"id": u.id, "name": u.name, "role": u.role, "active": u.active,
                   "created": u.created_at.strftime("%Y-%m-%d")} for u in users], hide_index=True)
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
    others = {u.id: u for u in users if u.id != account.id}
    if others:
        with st.form("toggle_user"):
            user_id = st.selectbox("Account", list(others), format_func=lambda uid: others[uid].name, key="toggle_user")
            toggled = st.form_submit_button("Deactivate / reactivate")
        if toggled and user_id is not None:
            target = others[user_id]
            app_state.transaction(lambda s: set_active(s, account, target.id, not target.active))
            app_state.flash(f"{'Deactivated' if target.active else 'Reactivated'} the account.")
            st.rerun()
