"""Runs: every run with its metric summaries; drill into one run's outputs, a page at a time."""

from __future__ import annotations

import math

import streamlit as st

from evaltune.feedback_ui import app_state
from evaltune.feedback_ui.auth import Account
from evaltune.feedback_ui.campaigns import CampaignError
from evaltune.feedback_ui.runs_data import (
    PAGE_SIZE,
    OutputFilter,
    count_outputs,
    outputs_page,
    rating_summary,
    run_metrics,
    runs_table,
)
from evaltune.feedback_ui.safe_text import inline, plain


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
    cols = st.columns(3)
    tag = cols[0].text_input("Tag", key="runs_tag").strip() or None
    rule = cols[1].text_input("Score filter", placeholder="abstention==0", key="runs_rule").strip()
    text = cols[2].text_input("Output contains", key="runs_text").strip() or None
    return OutputFilter(tag=tag, score_rules=[rule] if rule else [], text=text)


def _outputs(run_id: int) -> None:
    st.subheader("Outputs")
    flt = _filters()
    try:
        total = app_state.read(lambda s: count_outputs(s, run_id, flt))
    except CampaignError as error:
        st.error(inline(error))
        return
    pages = max(1, math.ceil(total / PAGE_SIZE))
    page = st.number_input(f"Page (of {pages})", min_value=1, max_value=pages, value=1, step=1, key="runs_page")
    st.caption(f"{total} outputs match")
    rows = app_state.read(lambda s: outputs_page(s, run_id, flt, int(page) - 1))
    for row in rows:
        scores = ", ".join(f"{name} {'—' if v is None else f'{v:.3g}'}" for name, v in sorted(row["scores"].items()))
        title = (f"{inline(row['item'])} (sample {row['sample']}) · {inline(scores) or 'no scores'}"
                 f" · {rating_summary(row['ratings'])}")
        with st.expander(title):
            plain(row["prompt"], label="Prompt")
            plain(row["output"], label="Output")
            for reference in row["references"]:
                plain(reference, label="Reference")
            if row["ratings"]:
                st.dataframe(row["ratings"], hide_index=True)
            if row["tags"]:
                st.caption("Tags: " + inline(", ".join(map(str, row["tags"]))))
