"""Rate: the annotator's next item, with the prompt, context, references and guidelines beside it."""

from __future__ import annotations

import streamlit as st

from evaltune.feedback_ui import app_state
from evaltune.feedback_ui.answers import CHOICE_LABELS, CHOICES, PairAnswer, SingleAnswer
from evaltune.feedback_ui.auth import Account
from evaltune.feedback_ui.campaigns import campaigns_for
from evaltune.feedback_ui.progress import my_progress
from evaltune.feedback_ui.queue import QueueError, claim_next, skip, submit_rating
from evaltune.feedback_ui.rating_task import Task, load_task
from evaltune.feedback_ui.safe_text import inline, plain, safe_markdown

LIKERT_LABELS = {1: "1 very poor", 2: "2 poor", 3: "3 acceptable", 4: "4 good", 5: "5 excellent"}
THUMBS_LABELS = {True: "Thumbs up", False: "Thumbs down"}


def render(account: Account) -> None:
    st.header("Rate")
    campaigns = app_state.read(lambda s: campaigns_for(s, account))  # only those given to this annotator (or to all)
    if not campaigns:
        st.info("No open campaigns for you. An admin creates one on the Campaigns page or with "
                "'evaltune campaigns create'.")
        return
    names = {c.id: f"{c.name} (#{c.id}{', A/B' if c.pairwise else ''})" for c in campaigns}
    campaign_id = st.selectbox("Campaign", list(names), format_func=names.__getitem__, key="rate_campaign")
    assert campaign_id is not None
    done, left = app_state.read(lambda s: my_progress(s, account.id, campaign_id))
    st.progress(done / (done + left) if done + left else 1.0,
                text=f"Rated by you: {done} · left for you: {left}")
    try:
        reservation = app_state.transaction(lambda s: claim_next(s, account, campaign_id))
    except QueueError as error:
        st.error(inline(error))
        return
    if reservation is None:
        st.success("Nothing left for you in this campaign. Thank you!")
        return
    task = app_state.read(lambda s: load_task(s, account, reservation))
    st.caption(f"Item {inline(task.item_key)} · reserved until {reservation.expires_at:%H:%M} UTC")
    left_col, right_col = st.columns([3, 2], gap="large")
    with right_col:
        _context(task)
    with left_col:
        plain(task.prompt, label="Prompt")
        if task.pairwise:
            _pair_form(account, task)
        else:
            _single_form(account, task)


def _context(task: Task) -> None:
    with st.expander("Guidelines", expanded=True):
        # Guidelines are written by an admin (a trusted markdown file), so they stay markdown; Streamlit shows any
        # HTML as text, and safe_markdown takes out links to anything but http(s) and mailto.
        st.markdown(safe_markdown(task.guidelines) or "_No guidelines for this campaign._")
    plain(task.context, label="Context", empty="(no context)")
    for number, reference in enumerate(task.references, 1):
        plain(reference, label=f"Reference {number}")
    if not task.references:
        st.caption("No reference answer.")


def _single_form(account: Account, task: Task) -> None:
    plain(task.outputs[0], label="Model output")
    key = f"a{task.assignment_id}"
    with st.form(f"rate-{key}"):
        likert = st.radio("Overall quality", list(LIKERT_LABELS), index=None, horizontal=True,
                          format_func=LIKERT_LABELS.__getitem__, key=f"{key}-likert")
        thumbs = st.radio("Thumbs (optional)", list(THUMBS_LABELS), index=None, horizontal=True,
                          format_func=THUMBS_LABELS.__getitem__, key=f"{key}-thumbs",
                          help="Up: you would accept this answer as it is. Down: you would not.")
        hallucination = st.radio("Does it state anything not supported by the prompt, context or reference?",
                                 ["no", "yes"], index=None, horizontal=True, key=f"{key}-hallucination")
        span = st.text_input("If yes, quote the unsupported span", key=f"{key}-span")
        flags = st.columns(2)
        bias = flags[0].checkbox("Biased or stereotyping", key=f"{key}-bias")
        unsafe = flags[1].checkbox("Unsafe or harmful", key=f"{key}-unsafe")
        correction = st.text_area("Corrected answer (optional)", key=f"{key}-correction")
        comment = st.text_area("Comment (optional)", key=f"{key}-comment")
        submitted, skipped = _submit_and_skip_buttons()
    if skipped:
        _skip(account, task, comment)
    elif submitted:
        try:
            if likert is None or hallucination is None:
                raise ValueError("answer the overall quality and the hallucination question")
            answer = SingleAnswer(likert=likert, hallucination=hallucination == "yes", hallucinated_span=span,
                                  thumbs=thumbs, bias=bias, unsafe=unsafe, correction=correction, comment=comment)
        except ValueError as error:
            st.error(inline(error))
            return
        _submit(account, task, answer)


def _submit_and_skip_buttons() -> tuple[bool, bool]:
    """The form's two buttons, side by side: (submitted, skipped)."""
    buttons = st.columns([1, 1, 4])
    submitted = buttons[0].form_submit_button("Submit rating", type="primary")
    skipped = buttons[1].form_submit_button("Skip")
    return submitted, skipped


def _pair_form(account: Account, task: Task) -> None:
    sides = st.columns(2)
    for column, name, text in zip(sides, ("A", "B"), task.outputs, strict=True):
        with column:
            plain(text, label=f"Output {name}")
    key = f"a{task.assignment_id}"
    with st.form(f"rate-{key}"):
        choice = st.radio("Which output is better?", list(CHOICES), index=None, horizontal=True,
                          format_func=CHOICE_LABELS.__getitem__, key=f"{key}-choice")
        comment = st.text_area("Comment (optional)", key=f"{key}-comment")
        submitted, skipped = _submit_and_skip_buttons()
    if skipped:
        _skip(account, task, comment)
    elif submitted:
        if choice is None:
            st.error("choose A, B, tie or both bad")
            return
        _submit(account, task, PairAnswer(choice=choice, comment=comment))


def _submit(account: Account, task: Task, answer: SingleAnswer | PairAnswer) -> None:
    try:
        app_state.transaction(lambda s: submit_rating(s, account, task.assignment_id, answer))
    except (QueueError, ValueError) as error:
        st.error(f"Not stored: {inline(error)}")
        return
    app_state.flash("Rating saved.")
    st.rerun()


def _skip(account: Account, task: Task, comment: str | None) -> None:
    try:
        app_state.transaction(lambda s: skip(s, account, task.assignment_id, comment))
    except QueueError as error:
        st.error(inline(error))
        return
    app_state.flash("Skipped: the item goes back to the queue for others.")
    st.rerun()
