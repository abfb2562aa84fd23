"""Agreement: Krippendorff's alpha per question, Cohen's kappa per pair of annotators, most-disagreed items."""

from __future__ import annotations

import streamlit as st

from evaltune.feedback_ui import app_state
from evaltune.feedback_ui.agreement_data import campaign_agreement, most_disagreed, pair_kappas, questions
from evaltune.feedback_ui.auth import Account
from evaltune.feedback_ui.campaigns import list_campaigns


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def render(account: Account) -> None:
    st.header("Agreement")
    campaigns = app_state.read(lambda s: list_campaigns(s))
    if not campaigns:
        st.info("No campaigns yet.")
        return
    by_id = {c.id: c for c in campaigns}
    labels = {cid: f"#{cid} {c.name}" + (" (A/B)" if c.pairwise else "") for cid, c in by_id.items()}
    campaign_id = st.selectbox("Campaign", list(by_id), key="agreement_campaign", format_func=labels.__getitem__)
    assert campaign_id is not None
    campaign = by_id[campaign_id]
    results = app_state.read(lambda s: campaign_agreement(s, campaign_id, campaign.pairwise))
    st.dataframe([{"question": r.question, "level": r.level, "Krippendorff's alpha": _fmt(r.alpha),
                   "items with 2+ ratings": r.items, "ratings": r.ratings} for r in results], hide_index=True)
    st.caption("Alpha: 1 is perfect agreement, 0 is chance; below about 0.67 the labels are unreliable. "
               "n/a: not enough overlapping ratings, or every rating the same. A/B choices are compared by the "
               "output chosen, not the side it was shown on.")
    asked = questions(campaign.pairwise)
    question = st.selectbox("Question", list(asked), key="agreement_question")
    assert question is not None
    kappas = app_state.read(lambda s: pair_kappas(s, campaign_id, question))
    st.subheader("Cohen's kappa per pair of annotators")
    if kappas:
        st.dataframe([{**row, "kappa": _fmt(row["kappa"])} for row in kappas], hide_index=True)
        if question == "likert":
            st.caption("Likert kappa is quadratic-weighted: a 4 against a 5 counts less than a 1 against a 5.")
    else:
        st.caption("No two annotators have rated the same items yet.")
    st.subheader("Most disagreed items")
    top = app_state.read(lambda s: most_disagreed(s, campaign_id, question, asked[question]))
    if top:
        st.dataframe(top, hide_index=True)
        if account.role == "admin":
            st.caption("Settle them on the Adjudicate page.")
    else:
        st.caption("No disagreements on this question.")
