"""Adjudicate (admins): pick a disagreed item, read every annotator's answers, record the final decision."""

from __future__ import annotations

from typing import Any

import streamlit as st

from evaltune.feedback_ui import app_state
from evaltune.feedback_ui.adjudication import adjudicate, item_ratings
from evaltune.feedback_ui.agreement_data import most_disagreed, questions
from evaltune.feedback_ui.auth import Account
from evaltune.feedback_ui.campaigns import list_campaigns
from evaltune.feedback_ui.safe_text import inline, plain

OPTIONS: dict[str, list[Any]] = {
    "likert": [1, 2, 3, 4, 5],
    "thumbs": [False, True],
    "hallucination": [False, True],
    "bias": [False, True],
    "unsafe": [False, True],
    "choice": ["first", "second", "tie", "both_bad"],
}


def render(account: Account) -> None:
    st.header("Adjudicate")
    campaigns = app_state.read(lambda s: list_campaigns(s))
    if not campaigns:
        st.info("No campaigns yet.")
        return
    by_id = {c.id: c for c in campaigns}
    campaign_id = st.selectbox("Campaign", list(by_id), format_func=lambda cid: f"#{cid} {by_id[cid].name}",
                               key="adj_campaign")
    assert campaign_id is not None
    asked = questions(by_id[campaign_id].pairwise)
    question = st.selectbox("Most disagreed on", list(asked), key="adj_question")
    assert question is not None
    top = app_state.read(lambda s: most_disagreed(s, campaign_id, question, asked[question], limit=50))
    if not top:
        st.success("No disagreements on this question.")
        return
    labels = {row["campaign item"]: f"{row['item']} · disagreement {row['disagreement']} · {row['answers']}"
              for row in top}
    item_id = st.selectbox("Item", list(labels), format_func=labels.__getitem__, key="adj_item")
    assert item_id is not None
    _item(account, item_id, asked)


def _item(account: Account, item_id: int, asked: dict[str, Any]) -> None:
    detail = app_state.read(lambda s: item_ratings(s, account, item_id))
    columns = st.columns(len(detail.outputs))
    for column, (label, text) in zip(columns, detail.outputs, strict=True):
        with column:
            plain(text, label=f"Output {label}")
    st.dataframe(detail.ratings, hide_index=True)
    if detail.decision is not None:
        st.caption(f"Current decision: {inline(detail.decision)}")
    with st.form(f"adjudicate-{item_id}"):
        decision: dict[str, Any] = {}
        for question in asked:
            current = (detail.decision or {}).get(question)
            options = [None, *OPTIONS[question]]
            index = options.index(current) if current in options else 0
            decision[question] = st.selectbox(question, options, index=index, key=f"adj-{item_id}-{question}",
                                              format_func=lambda v: "(no decision)" if v is None else str(v))
        note = st.text_area("Note", value=detail.note, key=f"adj-{item_id}-note")
        saved = st.form_submit_button("Save decision", type="primary")
    if saved:
        chosen = {q: v for q, v in decision.items() if v is not None}
        try:
            app_state.transaction(lambda s: adjudicate(s, account, item_id, chosen, note))
        except (ValueError, LookupError) as error:
            st.error(inline(error))
            return
        app_state.flash("Decision saved.")
        st.rerun()
