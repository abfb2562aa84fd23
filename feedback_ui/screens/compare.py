"""Compare: the same comparison report as ``evaltune report`` (reports/), shown in the app, with downloads.

It opens on the newest run that shares items with an earlier one, against the newest such run; when no two runs
share an item it says so instead of showing an error. The report's HTML escapes every model output and carries a
no-script Content-Security-Policy; it is shown in Streamlit's sandboxed iframe, never through ``st.markdown``.
"""

from __future__ import annotations

import streamlit as st
import streamlit.components.v1 as components

from evaltune.feedback_ui import app_state
from evaltune.feedback_ui.auth import Account
from evaltune.feedback_ui.runs_data import comparable_pair, runs_table, shares_items
from evaltune.feedback_ui.safe_text import inline
from evaltune.reports.compare import build_report
from evaltune.reports.load import ReportError
from evaltune.reports.render import render_report


def render(account: Account) -> None:
    st.header("Compare")
    runs = app_state.read(lambda s: runs_table(s, limit=200))
    if len(runs) < 2:
        st.info("Comparing needs two runs of a suite: run it twice (for example before and after a retune).")
        return
    labels = {row["run"]: f"run {row['run']}: {row['suite']} on {row['model']}" for row in runs}
    ids = list(labels)
    pair = _default_pair(ids)
    if pair is None:
        st.info("No two of these runs share an item, so there is nothing to compare yet. Run a suite again "
                "(another model, or after a retune) and compare the two runs here.")
        return
    cols = st.columns(2)
    baseline = cols[0].selectbox("Baseline", ids, index=ids.index(pair[0]), format_func=labels.__getitem__,
                                 key="cmp_base")
    candidate = cols[1].selectbox("Candidate", ids, index=ids.index(pair[1]), format_func=labels.__getitem__,
                                  key="cmp_cand")
    if baseline is None or candidate is None or baseline == candidate:
        st.info("Choose two different runs.")
        return
    if not app_state.read(lambda s: shares_items(s, int(baseline), int(candidate))):
        st.info(f"Runs {baseline} and {candidate} share no items (different suites?): choose two runs of the "
                f"same suite, such as runs {pair[0]} and {pair[1]}.")
        return
    try:
        report = app_state.read(lambda s: build_report(s, int(baseline), int(candidate)))
    except ReportError as error:  # e.g. outputs shared but none scored: said plainly, not as a failure
        st.info(inline(error))
        return
    st.subheader(f"Verdict: {report.verdict}")
    page = render_report(report, "html")
    downloads = st.columns(3)
    for col, fmt, mime in zip(downloads, ("html", "md", "json"), ("text/html", "text/markdown", "application/json"),
                              strict=True):
        col.download_button(f"Download {fmt}", render_report(report, fmt) if fmt != "html" else page,
                            file_name=f"report_{baseline}_vs_{candidate}.{fmt}", mime=mime, key=f"cmp_dl_{fmt}")
    components.html(page, height=1400, scrolling=True)


def _default_pair(run_ids: list[int]) -> tuple[int, int] | None:
    """The pair the page opens on, found once per browser session for this list of runs (the search reads every
    run's suite keys; widget changes rerun the page and must not repeat it)."""
    cached = st.session_state.get("cmp_default")
    if cached is None or cached[0] != run_ids:
        cached = (run_ids, app_state.read(lambda s: comparable_pair(s, run_ids)))
        st.session_state["cmp_default"] = cached
    return cached[1]
