"""The evaltune rating app: ``streamlit run feedback_ui/app.py`` (or ``evaltune ui``).

Nothing but the log-in form is shown before log-in. Each page is listed only for the roles that may use it,
and checks the role again itself when it runs, as does every action it calls.
"""

from __future__ import annotations

import streamlit as st

from evaltune.feedback_ui import app_state, server_config
from evaltune.feedback_ui.auth import Account
from evaltune.feedback_ui.safe_text import inline
from evaltune.feedback_ui.screens import PAGES, Page, login


def _choose_page(account: Account) -> Page:
    pages = [page for page in PAGES if page.allows(account)]
    slugs = [page.slug for page in pages]
    wanted = st.query_params.get("page", slugs[0])
    choice = st.sidebar.radio("Page", slugs, index=slugs.index(wanted) if wanted in slugs else 0,
                              format_func=lambda slug: pages[slugs.index(slug)].title, key="nav")
    st.query_params["page"] = choice or slugs[0]
    return pages[slugs.index(choice or slugs[0])]


def _sidebar(account: Account) -> None:
    st.sidebar.markdown(f"Signed in as **{inline(account.name)}** ({account.role})")
    if st.sidebar.button("Log out", key="logout"):
        app_state.sign_out()
        if st.user.get("is_logged_in"):
            st.logout()  # signed in through the identity provider: end that too, or it would sign in again
        st.rerun()


def main() -> None:
    st.set_page_config(page_title="evaltune ratings", layout="wide")
    server_config.freeze_imported_objects()  # keeps Streamlit's collection after each run cheap
    account = app_state.current_account()
    if account is None:
        app_state.cookie_exchange()
        login.render()
        return
    _sidebar(account)
    with st.sidebar:
        app_state.cookie_exchange()
    page = _choose_page(account)
    app_state.show_flash()
    page.render(app_state.guard(*page.roles))


main()
