"""Campaigns (admins): create one from runs with filters, overlap and guidelines; open or close them."""

from __future__ import annotations

import streamlit as st

from evaltune.feedback_ui import app_state
from evaltune.feedback_ui.auth import Account, list_users
from evaltune.feedback_ui.campaigns import (
    FILTER_HELP,
    CampaignError,
    annotators_by_campaign,
    create_campaign,
    list_campaigns,
    set_status,
)
from evaltune.feedback_ui.runs_data import runs_table
from evaltune.feedback_ui.safe_text import inline


def render(account: Account) -> None:
    st.header("Campaigns")
    _create(account)
    st.subheader("All campaigns")
    given = app_state.read(annotators_by_campaign)
    for campaign in app_state.read(lambda s: list_campaigns(s)):
        cols = st.columns([5, 1])
        kind = "A/B" if campaign.pairwise else "single output"
        runs = inline(", ".join(map(str, campaign.run_ids)))
        who = inline(", ".join(given[campaign.id])) if campaign.id in given else "every annotator"
        status = "open" if campaign.status == "open" else "**closed**: no more items are handed out"
        cols[0].markdown(f"**#{campaign.id} {inline(campaign.name)}** · {kind} · runs {runs} · "
                         f"overlap {campaign.overlap} · {status} · for {who}")
        target = "closed" if campaign.status == "open" else "open"
        if cols[1].button("Close" if target == "closed" else "Reopen", key=f"campaign-{campaign.id}-{target}"):
            _set_status(account, campaign.id, target)


def _set_status(account: Account, campaign_id: int, status: str) -> None:
    app_state.transaction(lambda s: set_status(s, account, campaign_id, status))
    st.rerun()


def _create(account: Account) -> None:
    runs = app_state.read(lambda s: runs_table(s, limit=200))
    labels = {row["run"]: f"run {row['run']}: {row['suite']} on {row['model']} ({row['status']})" for row in runs}
    with st.form("new_campaign"):
        st.subheader("New campaign")
        name = st.text_input("Name", key="new_name")
        run_ids = st.multiselect("Runs (two for A/B)", list(labels), format_func=labels.__getitem__, key="new_runs")
        filters = st.text_area("Filters, one per line", help=FILTER_HELP, key="new_filters")
        cols = st.columns(2)
        overlap = cols[0].number_input("Ratings per item (overlap)", min_value=1, max_value=20, value=2, key="new_k")
        pairwise = cols[1].checkbox("Blind pairwise A/B", key="new_pairwise")
        people = {u.id: u.name for u in app_state.read(lambda s: list_users(s)) if u.role == "annotator" and u.active}
        annotators = st.multiselect("Annotators (none chosen: every annotator)", list(people),
                                    format_func=people.__getitem__, key="new_annotators")
        guidelines = st.text_area("Guidelines (markdown)", height=150, key="new_guidelines")
        created = st.form_submit_button("Create campaign", type="primary")
    if not created:
        return
    try:
        campaign = app_state.transaction(lambda s: create_campaign(
            s, account, name=name, run_ids=run_ids, filters=[line for line in filters.splitlines() if line.strip()],
            overlap=int(overlap), pairwise=pairwise, guidelines=guidelines, annotators=annotators))
    except CampaignError as error:
        st.error(inline(error))
        return
    app_state.flash(f"Created campaign #{campaign.id}.")
    st.rerun()
