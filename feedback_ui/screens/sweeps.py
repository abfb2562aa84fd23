"""Sweeps: a sweep's matrix (every prompt variant × model against every metric, the best cell marked), each cell's
delta against a baseline cell the viewer picks, and the items the cells disagree on with every cell's output.

The tables are data grids, which draw each cell as text; outputs are shown by ``safe_text.plain``. Variant
names, --model texts and outputs never reach markdown unescaped.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from evaltune.feedback_ui import app_state
from evaltune.feedback_ui.auth import Account
from evaltune.feedback_ui.safe_text import inline, plain
from evaltune.reports.load import ReportError
from evaltune.reports.sweep_matrix import SweepMatrix, build_matrix, header_line, sweep_cells, sweep_summaries
from evaltune.reports.sweep_render import delta_cell, render_matrix, value_cell

BEST = " ★"
PINNED = {"cell": st.column_config.TextColumn(pinned=True)}  # the cell stays in view while metrics scroll


def render(account: Account) -> None:
    st.header("Sweeps")
    found = app_state.read(lambda s: sweep_summaries(s, limit=200))
    if not found:
        st.info("No sweeps yet: 'evaltune run SUITE --model A --model B' (or a suite with prompts:) makes one.")
        return
    st.dataframe([{"sweep": s.id, "name": s.name, "status": s.status, "done": f"{s.completed}/{s.cells}",
                   "variants": ", ".join(s.variants), "models": ", ".join(s.models), "created": s.created_at[:16]}
                  for s in found], hide_index=True, key="sweeps_list")
    names = {s.id: f"sweep {s.id}: {s.name} ({s.completed}/{s.cells} cells done)" for s in found}
    sweep_id = st.selectbox("Sweep", list(names), format_func=names.__getitem__, key="sweeps_sweep")
    assert sweep_id is not None
    labels = app_state.read(lambda s: sweep_cells(s, int(sweep_id)))
    baseline = st.selectbox("Baseline cell", labels, key="sweeps_baseline",
                            help="The cell every other cell is compared with, item by item.")
    try:
        matrix = app_state.read(lambda s: build_matrix(s, int(sweep_id), baseline))
    except ReportError as error:  # the sweep changed under the page (a cell was added by a resumed run)
        st.error(inline(error))
        return
    _matrix(matrix)
    _downloads(matrix)
    _examples(matrix)


def _matrix(matrix: SweepMatrix) -> None:
    st.caption(inline(header_line(matrix)))
    st.subheader("Values [95% CI]")
    st.dataframe([{"cell": row.label + (" (baseline)" if row.baseline else ""), "run": row.run_id,
                   "status": row.status,
                   **{_column(c.name, c.higher_is_better): value_cell(row.values.get(c.name))
                      + (BEST if (v := row.values.get(c.name)) is not None and v.best else "")
                      for c in matrix.metrics}} for row in matrix.rows], hide_index=True, key="sweeps_values",
                 column_config=PINNED)
    st.caption(f"★ best cell for the metric. Deltas against the baseline cell on shared items; q-values: "
               f"Benjamini–Hochberg over the matrix's {matrix.tests} tests.")
    st.subheader("Delta against the baseline")
    rows: list[dict[str, Any]] = [
        {"cell": row.label, "shared items": row.shared_items,
         **{_column(c.name, c.higher_is_better): delta_cell(row.values.get(c.name)) for c in matrix.metrics}}
        for row in matrix.rows if not row.baseline]
    if rows:
        st.dataframe(rows, hide_index=True, key="sweeps_deltas", column_config=PINNED)
    else:
        st.info("The sweep has one cell: nothing to compare.")


def _column(name: str, higher_is_better: bool) -> str:
    return f"{name} {'↑' if higher_is_better else '↓'}"


def _downloads(matrix: SweepMatrix) -> None:
    cols = st.columns(3)
    for col, fmt, mime in zip(cols, ("html", "md", "json"), ("text/html", "text/markdown", "application/json"),
                              strict=True):
        col.download_button(f"Download {fmt}", render_matrix(matrix, fmt), file_name=f"sweep_{matrix.sweep_id}.{fmt}",
                            mime=mime, key=f"sweeps_dl_{fmt}")


def _examples(matrix: SweepMatrix) -> None:
    st.subheader("Items the cells disagree on")
    if not matrix.examples:
        st.caption("None: every 0/1 scorer gives each item the same value in every cell.")
        return
    st.caption(f"{matrix.disagreements} items; the first {len(matrix.examples)}, most scorers differing first.")
    by_key = {example.key: example for example in matrix.examples}
    key = st.selectbox("Item", list(by_key), key="sweeps_item",
                       format_func=lambda k: f"{k} ({', '.join(by_key[k].scorers)})")
    if key is None:
        return
    example = by_key[key]
    plain(example.question, label="Question")
    for label, output in example.outputs.items():
        scores = ", ".join(f"{name} {value:g}" for name, value in example.values.get(label, {}).items())
        st.caption(inline(f"{label}: {scores}" if scores else label))
        plain(output, empty="(no output for this item)")
