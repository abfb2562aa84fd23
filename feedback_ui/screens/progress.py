"""Progress: every campaign's completion, and each annotator's ratings, skips and open reservations."""

from __future__ import annotations

import streamlit as st

from evaltune.feedback_ui import app_state
from evaltune.feedback_ui.auth import Account
from evaltune.feedback_ui.progress import annotator_progress, campaign_progress


def render(account: Account) -> None:
    st.header("Progress")
    campaigns = app_state.read(lambda s: campaign_progress(s))
    if not campaigns:
        st.info("No campaigns yet.")
        return
    st.dataframe(
        [{"campaign": c.campaign_id, "name": c.name, "kind": "A/B" if c.pairwise else "single", "status": c.status,
          "overlap": c.overlap, "items": c.items, "complete": c.complete_items,
          "ratings": f"{c.ratings} / {c.wanted}", "done": round(100 * c.fraction, 1), "open now": c.open_holds}
         for c in campaigns],
        hide_index=True,
        column_config={"done": st.column_config.ProgressColumn("done %", min_value=0, max_value=100, format="%.1f%%")},
    )
    options = [None, *(c.campaign_id for c in campaigns)]
    names = {c.campaign_id: f"#{c.campaign_id} {c.name}" for c in campaigns}
    chosen = st.selectbox("Annotators in", options, key="progress_campaign",
                          format_func=lambda cid: "all campaigns" if cid is None else names[cid])
    rows = app_state.read(lambda s: annotator_progress(s, chosen))
    if rows:
        st.dataframe(rows, hide_index=True)
    else:
        st.caption("No ratings yet.")
