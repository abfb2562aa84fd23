"""Agreement: Krippendorff's alpha per question, a stored judge as one more rater, Cohen's kappa per pair of
raters, most-disagreed items."""

from __future__ import annotations

import streamlit as st

from evaltune.feedback_ui import app_state
from evaltune.feedback_ui.agreement_data import (
    campaign_agreement,
    judge_kappas,
    judge_results,
    most_disagreed,
    pair_kappas,
    questions,
)
from evaltune.feedback_ui.auth import Account
from evaltune.feedback_ui.campaigns import list_campaigns
from evaltune.metrics.stats.agreement import Agreement
from evaltune.reports.judge_agreement import verdict


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _with_ci(estimate: Agreement) -> str:
    if estimate.value is None:
        return "n/a"
    return f"{estimate.value:.3f} [{_fmt(estimate.ci_low)}, {_fmt(estimate.ci_high)}]"


def _judge(campaign_id: int, pairwise: bool) -> None:
    st.subheader("The judge as one more rater")
    results = app_state.read(lambda s: judge_results(s, campaign_id, pairwise))
    if not results:
        st.caption(f"No judge has rated this campaign yet: `evaltune judge agreement --campaign {campaign_id}` "
                   "scores its rated outputs with the judge and stores the answers here.")
        return
    st.dataframe([{"question": details["question"], "judge": str(details["judge"]), "items": r.items,
                   "judge vs consensus alpha [95% CI]": _with_ci(r.alpha), "Spearman rho [95% CI]": _with_ci(r.rho),
                   "annotators' alpha": _fmt(r.annotators.value), "alpha with the judge as a rater": _fmt(r.with_judge),
                   "verdict": verdict(r)} for details, r in results], hide_index=True)
    st.caption("Consensus: an adjudicated decision, else the median Likert score or the majority answer. Rho "
               "compares the judge's score with the annotators' mean answer. The criteria each judge was given:")
    # A table shows text as text: criteria come from a user's file (or the campaign's guidelines).
    st.dataframe([{"question": details["question"], "criteria": details["criteria"]} for details, _ in results],
                 hide_index=True)


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
    _judge(campaign_id, campaign.pairwise)
    asked = questions(campaign.pairwise)
    question = st.selectbox("Question", list(asked), key="agreement_question")
    assert question is not None
    kappas = app_state.read(lambda s: pair_kappas(s, campaign_id, question) + judge_kappas(s, campaign_id, question))
    st.subheader("Cohen's kappa per pair of raters")
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
