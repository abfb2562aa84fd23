"""Adjudicate (admins): pick a disagreed item, read its prompt, outputs (with marked spans) and every annotator's
answers in words, record the final decision."""

from __future__ import annotations

from functools import partial
from typing import Any

import streamlit as st

from evaltune.feedback_ui import app_state
from evaltune.feedback_ui.adjudication import ItemRatings, adjudicate, answer_words, decision_words, item_ratings
from evaltune.feedback_ui.agreement_data import most_disagreed, questions
from evaltune.feedback_ui.auth import Account
from evaltune.feedback_ui.campaigns import list_campaigns
from evaltune.feedback_ui.safe_text import inline, plain
from evaltune.feedback_ui.spans_view import show_output

OPTIONS: dict[str, list[Any]] = {
    "likert": [1, 2, 3, 4, 5],
    "thumbs": [False, True],
    "hallucination": [False, True],
    "bias": [False, True],
    "unsafe": [False, True],
    "choice": ["first", "second", "tie", "both_bad"],
}
QUESTION_LABELS = {"likert": "Overall score", "thumbs": "Thumbs", "hallucination": "Hallucination", "bias": "Bias",
                   "unsafe": "Unsafe", "choice": "Which output is better"}


def render(account: Account) -> None:
    st.header("Adjudicate")
    campaigns = app_state.read(lambda s: list_campaigns(s))
    if not campaigns:
        st.info("No campaigns yet.")
        return
    by_id = {c.id: c for c in campaigns}
    # The three choices share one row so that the item itself starts above the fold at 1280x800.
    choose = st.columns([2, 2, 3])
    campaign_id = choose[0].selectbox("Campaign", list(by_id), format_func=lambda cid: f"#{cid} {by_id[cid].name}",
                                      key="adj_campaign")
    assert campaign_id is not None
    asked = questions(by_id[campaign_id].pairwise)
    question = choose[1].selectbox("Most disagreed on", list(asked), key="adj_question",
                                   format_func=lambda q: QUESTION_LABELS.get(q, q))
    assert question is not None
    top = app_state.read(lambda s: most_disagreed(s, campaign_id, question, asked[question], limit=50))
    if not top:
        st.success("No disagreements on this question.")
        return
    labels = {row["campaign item"]: f"{row['item']} · disagreement {row['disagreement']} · {row['answers']}"
              for row in top}
    item_id = choose[2].selectbox("Item", list(labels), format_func=labels.__getitem__, key="adj_item")
    assert item_id is not None
    _item(account, item_id, asked)


def _item(account: Account, item_id: int, asked: dict[str, Any]) -> None:
    detail = app_state.read(lambda s: item_ratings(s, account, item_id))
    # What was asked on the left, what was answered on the right: the whole item in view at once on a laptop
    # (on a phone the columns stack in reading order).
    asked_column, answered_column = st.columns(2)
    with asked_column:
        _what_was_asked(detail)
    with answered_column:
        for index, (label, text) in enumerate(detail.outputs):
            spans = detail.marked_spans if index == 0 else None  # spans are marked on a single output only
            show_output(text, spans, label=f"Output {label}", title="marked unsupported by an annotator")
        _ratings(detail)
    st.markdown(f"**Current decision:** {inline(decision_words(detail.decision, detail.run_labels))}")
    with st.form(f"adjudicate-{item_id}"):
        decision: dict[str, Any] = {}
        for question, column in zip(asked, st.columns(len(asked)), strict=True):  # one row on a laptop
            current = (detail.decision or {}).get(question)
            options = [None, *OPTIONS[question]]
            index = options.index(current) if current in options else 0
            decision[question] = column.selectbox(
                QUESTION_LABELS[question], options, index=index, key=f"adj-{item_id}-{question}",
                format_func=partial(_option_words, question, detail.run_labels))
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


def _what_was_asked(detail: ItemRatings) -> None:
    """The prompt, context and references the annotators saw, before the outputs they judged."""
    plain(detail.prompt, label=f"Prompt (item {detail.item_key})")
    if detail.context:
        plain(detail.context, label="Context")
    for reference in detail.references:
        plain(reference, label="Reference")


def _ratings(detail: ItemRatings) -> None:
    st.markdown(f"**Ratings** ({len(detail.said)})")
    if not detail.said:
        st.caption("No ratings stored for this item.")
    for rating in detail.said:
        # Annotator names and quoted spans are stored text: escaped, never read as markdown.
        st.markdown(f"- **{inline(rating.annotator)}**: {inline(rating.words)}")


def _option_words(question: str, run_labels: list[str], value: Any) -> str:
    return "(no decision)" if value is None else answer_words(question, value, run_labels)
