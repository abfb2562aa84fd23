"""Runs: every run with its metric summaries; drill into one run's outputs, a page at a time, as a table of
question, reference, output and the scores that apply to each item, and one output in full."""

from __future__ import annotations

import math
from typing import Any

import streamlit as st

from evaltune.feedback_ui import app_state
from evaltune.feedback_ui.auth import Account
from evaltune.feedback_ui.campaigns import CampaignError
from evaltune.feedback_ui.runs_data import (
    PAGE_SIZE,
    OutputFilter,
    ShownOutput,
    check_filter,
    count_outputs,
    outputs_page,
    outputs_table,
    rating_summary,
    run_metrics,
    runs_table,
)
from evaltune.feedback_ui.safe_text import inline, plain
from evaltune.feedback_ui.spans_view import merged_spans, show_output, span_texts
from evaltune.reports.outputs import FAILURE_RULE, OutputsError
from evaltune.reports.outputs_format import score_text


def render(account: Account) -> None:
    st.header("Runs")
    runs = app_state.read(lambda s: runs_table(s, limit=200))
    if not runs:
        st.info("No runs yet: try 'evaltune run regression --model default'.")
        return
    st.dataframe(runs, hide_index=True)
    labels = {row["run"]: f"run {row['run']}: {row['suite']} on {row['model']}" for row in runs}
    run_id = st.selectbox("Drill into", list(labels), format_func=labels.__getitem__, key="runs_run")
    assert run_id is not None
    st.dataframe(app_state.read(lambda s: run_metrics(s, run_id)), hide_index=True)
    _outputs(run_id)


def _filters() -> OutputFilter:
    # The last column is wide enough for "Failures only" and its help icon at 1280 px (narrower cut it to
    # "Failures…"); on a phone the columns stack.
    cols = st.columns([3, 3, 3, 2], vertical_alignment="bottom")
    tag = cols[0].text_input("Tag", key="runs_tag").strip() or None
    rule = cols[1].text_input("Score filter", placeholder="abstention==0", key="runs_rule").strip()
    text = cols[2].text_input("Output contains", key="runs_text").strip() or None
    failures = cols[3].checkbox("Failures only", key="runs_failures", help=inline(FAILURE_RULE.capitalize()))
    return OutputFilter(tag=tag, score_rules=[rule] if rule else [], text=text, failures=failures)


def _outputs(run_id: int) -> None:
    st.subheader("Outputs")
    flt = _filters()
    try:
        app_state.read(lambda s: check_filter(s, run_id, flt))
        total = app_state.read(lambda s: count_outputs(s, run_id, flt))
    except (CampaignError, OutputsError) as error:
        st.error(inline(error))
        return
    pages = max(1, math.ceil(total / PAGE_SIZE))
    page = st.number_input(f"Page (of {pages})", min_value=1, max_value=pages, value=1, step=1, key="runs_page")
    st.caption(f"{total} outputs match")
    shown = app_state.read(lambda s: outputs_page(s, run_id, flt, int(page) - 1))
    if not shown:
        return
    # A data grid draws each cell as text: no markdown, no HTML, whatever the model wrote.
    st.dataframe(outputs_table(shown), hide_index=True, key="runs_outputs", column_config={
        "question": st.column_config.TextColumn(width="medium"),
        "output": st.column_config.TextColumn(width="large")})
    _one_output(shown)


def _one_output(shown: list[ShownOutput]) -> None:
    """One output of the page in full: the question, context, references, output, scores and ratings."""
    by_id = {item.row.generation_id: item for item in shown}
    picked = st.selectbox("Show in full", list(by_id), key="runs_full",
                          format_func=lambda gid: by_id[gid].row.item + (
                              f" (sample {by_id[gid].row.sample})" if by_id[gid].row.sample else ""))
    if picked is None:
        return
    chosen = by_id[picked]
    row = chosen.row
    plain(row.question, label="Question")
    if row.context:
        plain(row.context, label="Context")
    for reference in row.references:
        plain(reference, label="Reference")
    marked = merged_spans(rating.get("spans") for rating in chosen.ratings)
    show_output(row.output, marked, label="Output" + (" (spans annotators marked unsupported are highlighted)"
                                                      if marked else ""), title="marked unsupported by an annotator")
    st.caption(inline(score_text(row) or "no scores") + " · " + rating_summary(chosen.ratings))
    if chosen.ratings:
        st.dataframe([_rating_row(rating, row.output) for rating in chosen.ratings], hide_index=True)
    if row.tags:
        st.caption("Tags: " + inline(", ".join(row.tags)))


def _rating_row(rating: dict[str, Any], output: str) -> dict[str, Any]:
    """A rating for the table: its spans as the quoted text they mark (offsets mean little to a reader)."""
    quoted = span_texts(output, rating.get("spans"))
    shown = {key: value for key, value in rating.items() if key != "spans"}
    if quoted:
        shown["hallucinated_span"] = " … ".join(quoted)
    return shown
