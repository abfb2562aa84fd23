"""Compare: the same comparison report as ``evaltune report`` (reports/), shown in the app, with downloads.

The report's HTML escapes every model output and carries a no-script Content-Security-Policy; it is shown
in Streamlit's sandboxed iframe, never through ``st.markdown``.
"""

from __future__ import annotations

import streamlit as st
import streamlit.components.v1 as components

from evaltune.feedback_ui import app_state
from evaltune.feedback_ui.auth import Account
from evaltune.feedback_ui.runs_data import runs_table
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
    cols = st.columns(2)
    baseline = cols[0].selectbox("Baseline", ids, index=1, format_func=labels.__getitem__, key="cmp_base")
    candidate = cols[1].selectbox("Candidate", ids, index=0, format_func=labels.__getitem__, key="cmp_cand")
    if baseline is None or candidate is None or baseline == candidate:
        st.info("Choose two different runs.")
        return
    try:
        report = app_state.read(lambda s: build_report(s, int(baseline), int(candidate)))
    except ReportError as error:
        st.error(inline(error))
        return
    st.subheader(f"Verdict: {report.verdict}")
    page = render_report(report, "html")
    downloads = st.columns(3)
    for col, fmt, mime in zip(downloads, ("html", "md", "json"), ("text/html", "text/markdown", "application/json"),
                              strict=True):
        col.download_button(f"Download {fmt}", render_report(report, fmt) if fmt != "html" else page,
                            file_name=f"report_{baseline}_vs_{candidate}.{fmt}", mime=mime, key=f"cmp_dl_{fmt}")
    components.html(page, height=1400, scrolling=True)
