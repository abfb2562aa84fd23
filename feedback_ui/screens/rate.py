"""Rate: the annotator's next item. The prompt, the right answer and the context on the left; the output and the
form beside them on the right, so that at 1280x800 everything needed for a rating is on screen at once.

The form is one custom component (``components.rating_form``): keys for every choice, spans marked in the output,
one event per rating. That event is handled in the component's callback, before the script runs again, so a
rating costs one script run and the next item is drawn in that same run.
"""

from __future__ import annotations

import streamlit as st

from evaltune.feedback_ui import app_state
from evaltune.feedback_ui.answers import answer_from_form
from evaltune.feedback_ui.auth import Account
from evaltune.feedback_ui.campaigns import campaigns_for
from evaltune.feedback_ui.components.rating_form import form_event, rating_form
from evaltune.feedback_ui.progress import my_progress
from evaltune.feedback_ui.queue import QueueError, claim_next, skip, submit_rating
from evaltune.feedback_ui.rating_task import Task, load_task
from evaltune.feedback_ui.safe_text import inline, plain, safe_markdown

ANCHOR = "rate"  # the page's heading: where the next item starts, scrolled to after each rating
FORM_KEY = "rate_form"
ABSTAIN_ANSWER = "I don't know."
# What the last event did, shown once on the next run: ("saved" | "skipped" | "refused", text).
OUTCOME_KEY = "rate_outcome"
REFUSALS_KEY = "rate_refusals"  # how many answers the store refused this session: the form re-enables on a change


def render(account: Account) -> None:
    st.header("Rate", anchor=ANCHOR)
    campaigns = app_state.read(lambda s: campaigns_for(s, account))  # only those given to this annotator (or to all)
    if not campaigns:
        st.info("No open campaigns for you. An admin creates one on the Campaigns page or with "
                "'evaltune campaigns create'.")
        return
    names = {c.id: f"{c.name} (#{c.id}{', A/B' if c.pairwise else ''})" for c in campaigns}
    top = st.columns([3, 2], vertical_alignment="bottom")
    campaign_id = top[0].selectbox("Campaign", list(names), format_func=names.__getitem__, key="rate_campaign")
    assert campaign_id is not None
    done, left = app_state.read(lambda s: my_progress(s, account.id, campaign_id))
    top[1].progress(done / (done + left) if done + left else 1.0, text=f"Rated by you: {done} · left for you: {left}")
    _show_outcome()
    try:
        reservation = app_state.transaction(lambda s: claim_next(s, account, campaign_id))
    except QueueError as error:
        st.error(inline(error))
        return
    if reservation is None:
        st.success("Nothing left for you in this campaign. Thank you!")
        return
    task = app_state.read(lambda s: load_task(s, account, reservation))
    question, form = st.columns([2, 3], gap="medium")
    with question:
        _question(task, f"Item {inline(task.item_key)} · reserved until {reservation.expires_at:%H:%M} UTC")
    with form:
        rating_form(key=FORM_KEY, item=task.assignment_id, outputs=task.outputs, pairwise=task.pairwise,
                    anchor=ANCHOR, on_event=lambda: _on_event(account, task),
                    notice=st.session_state.get(REFUSALS_KEY, 0))


def _show_outcome() -> None:
    kind, text = st.session_state.pop(OUTCOME_KEY, (None, ""))
    if kind == "refused":
        st.error(f"Not stored: {inline(text)}")
    elif kind:
        st.toast(text)  # a toast takes no room above the next item


def _question(task: Task, caption: str) -> None:
    """The prompt, the right answer, the context and the guidelines: what the annotator judges the output by."""
    st.caption(caption)
    plain(task.prompt, label="Prompt")
    if task.references_hidden:
        st.caption("Reference answers are hidden in this campaign: judge the output on its own.")
    for number, reference in enumerate(task.references, 1):
        plain(reference, label=f"Reference {number}" if len(task.references) > 1 else "Right answer")
    if not task.references and task.expect_abstention:
        # The suite says nothing can answer this question: the right answer is to decline.
        plain(ABSTAIN_ANSWER, label="Right answer: abstain (nothing in the sources answers this)")
    elif not task.references and not task.references_hidden:
        st.caption("No reference answer.")
    if task.context:
        plain(task.context, label="Context")
    with st.expander("Guidelines"):
        # Guidelines are written by an admin (a trusted markdown file), so they stay markdown; Streamlit shows any
        # HTML as text, and safe_markdown takes out links to anything but http(s) and mailto.
        st.markdown(safe_markdown(task.guidelines) or "_No guidelines for this campaign._")


def _on_event(account: Account, task: Task) -> None:
    """The form's callback: store the rating or the skip it sent, and say how that went on the next run."""
    event = form_event(FORM_KEY)
    if event is None or event.item != task.assignment_id:
        return  # an event from a form no longer on screen
    try:
        if event.kind == "skipped":
            comment = event.values.get("comment")
            app_state.transaction(lambda s: skip(s, account, task.assignment_id,
                                                 comment if isinstance(comment, str) else None))
            st.session_state[OUTCOME_KEY] = ("skipped", "Skipped: the item goes back to the queue for others.")
            return
        answer = answer_from_form(event.values, task.outputs[0], task.pairwise)
        app_state.transaction(lambda s: submit_rating(s, account, task.assignment_id, answer))
    except (QueueError, ValueError) as error:
        st.session_state[OUTCOME_KEY] = ("refused", str(error))
        st.session_state[REFUSALS_KEY] = st.session_state.get(REFUSALS_KEY, 0) + 1
        return
    st.session_state[OUTCOME_KEY] = ("saved", "Rating saved.")
