"""Campaigns (admins): create one from runs with filters, overlap, guidelines and how to choose its items (all, or
an informative selection within a budget of judgements); open or close them. Each campaign says how many A/B
pairs were identical and recorded as ties, and how its items were chosen."""

from __future__ import annotations

import streamlit as st

from evaltune.feedback_ui import app_state
from evaltune.feedback_ui.auth import Account, list_users
from evaltune.feedback_ui.campaigns import (
    FILTER_HELP,
    CampaignError,
    annotators_by_campaign,
    campaign_notes,
    create_campaign,
    list_campaigns,
    ruled_ties_by_campaign,
    set_status,
)
from evaltune.feedback_ui.progress import campaign_progress
from evaltune.feedback_ui.runs_data import runs_table
from evaltune.feedback_ui.safe_text import inline
from evaltune.reports.human import ruled_ties_note

SELECTIONS = {"all": "Every output that passes the filters",
              "informative": "Informative: near a threshold, scorers disagree, or flipped between runs"}


def render(account: Account) -> None:
    st.header("Campaigns")
    _create(account)
    st.subheader("All campaigns")
    given = app_state.read(annotators_by_campaign)
    ties = app_state.read(lambda s: ruled_ties_by_campaign(s))
    items = {row.campaign_id: row.items for row in app_state.read(lambda s: campaign_progress(s))}
    for campaign in app_state.read(lambda s: list_campaigns(s)):
        cols = st.columns([5, 1])
        kind = "A/B" if campaign.pairwise else "single output"
        runs = inline(", ".join(map(str, campaign.run_ids)))
        who = inline(", ".join(given[campaign.id])) if campaign.id in given else "every annotator"
        status = "open" if campaign.status == "open" else "**closed**: no more items are handed out"
        cols[0].markdown(f"**#{campaign.id} {inline(campaign.name)}** · {kind} · runs {runs} · "
                         f"overlap {campaign.overlap} · {status} · for {who}")
        counts = (ties.get(campaign.id, 0), items.get(campaign.id, 0))
        for line in campaign_notes(campaign.selection, *counts, campaign.run_ids):
            cols[0].caption(inline(line) + ".")
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
        hide_references = st.checkbox("Hide reference answers from annotators", key="new_hide_references",
                                      help="They judge without anchoring on the expected answer.")
        cols = st.columns(2)
        selection = cols[0].selectbox("Items to ask about", list(SELECTIONS), format_func=SELECTIONS.__getitem__,
                                      key="new_selection")
        budget = cols[1].number_input("Budget: judgements to spend (informative only)", min_value=1, value=200,
                                      key="new_budget", help="At most budget ÷ overlap items are chosen.")
        created = st.form_submit_button("Create campaign", type="primary")
    if not created:
        return
    try:
        campaign = app_state.transaction(lambda s: create_campaign(
            s, account, name=name, run_ids=run_ids, filters=[line for line in filters.splitlines() if line.strip()],
            overlap=int(overlap), pairwise=pairwise, guidelines=guidelines, annotators=annotators,
            selection=selection, budget=int(budget) if selection == "informative" else None,
            hide_references=hide_references))
    except CampaignError as error:
        st.error(inline(error))
        return
    ties = app_state.read(lambda s: ruled_ties_by_campaign(s, [campaign.id])).get(campaign.id, 0)
    app_state.flash(f"Created campaign #{campaign.id}." + (f" {ruled_ties_note(ties)}." if ties else ""))
    st.rerun()
