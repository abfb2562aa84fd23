"""Progress: every campaign's completion, and each annotator's ratings, skips and open reservations.

"Open now" is annotators' work in progress only: an admin who opens the Rate page to try a campaign holds an
item too, and that hold is shown apart, as the admin's own, never as an annotator's open work.
"""

from __future__ import annotations

import streamlit as st

from evaltune.feedback_ui import app_state
from evaltune.feedback_ui.auth import Account
from evaltune.feedback_ui.progress import annotator_progress, campaign_progress, open_reservations


def render(account: Account) -> None:
    st.header("Progress")
    campaigns = app_state.read(lambda s: campaign_progress(s))
    if not campaigns:
        st.info("No campaigns yet.")
        return
    st.dataframe(
        # What a person looks for first leads, so that a phone's narrow table still shows it without scrolling.
        [{"name": c.name, "done": round(100 * c.fraction, 1), "ratings": f"{c.ratings} / {c.wanted}",
          "open now": c.open_holds, "campaign": c.campaign_id, "kind": "A/B" if c.pairwise else "single",
          "status": c.status, "overlap": c.overlap, "items": c.items, "complete": c.complete_items}
         for c in campaigns],
        hide_index=True,
        column_config={
            "done": st.column_config.ProgressColumn("done %", min_value=0, max_value=100, format="%.1f%%"),
            "open now": st.column_config.NumberColumn("open now", help="Items annotators hold right now"),
        },
    )
    _own_holds(account)
    options = [None, *(c.campaign_id for c in campaigns)]
    names = {c.campaign_id: f"#{c.campaign_id} {c.name}" for c in campaigns}
    chosen = st.selectbox("Annotators in", options, key="progress_campaign",
                          format_func=lambda cid: "all campaigns" if cid is None else names[cid])
    rows = app_state.read(lambda s: annotator_progress(s, chosen))
    if rows:
        st.dataframe(rows, hide_index=True)
    else:
        st.caption("No ratings yet.")


def _own_holds(account: Account) -> None:
    """The signed-in admin's own open reservations, if any, said apart from the annotators' figures."""
    if account.role != "admin":
        return
    mine = app_state.read(lambda s: open_reservations(s, user_id=account.id))
    held = sum(mine.values())
    if held:
        where = ", ".join(f"#{cid}" for cid, _ in sorted(mine))
        st.caption(f"You hold {held} item{'s' if held > 1 else ''} yourself (campaign {where}): not counted in "
                   "'open now'; it is released when you rate or skip it, or when the reservation expires.")
