"""The sweep matrix as Markdown, as one self-contained HTML page, or as JSON (``evaltune report --sweep N``).

The HTML page escapes every string that came from a user or a model (variant names, --model texts, metric names,
questions, outputs) and carries the comparison report's no-script Content-Security-Policy.
"""

from __future__ import annotations

import json
from html import escape

from evaltune.reports.html import CSP, CSS
from evaltune.reports.markdown import fmt, md_cell
from evaltune.reports.sweep_matrix import CellValue, MatrixRow, SweepMatrix, header_line, matrix_record

FORMATS = ("html", "md", "json")
MATRIX_CSS = "td.best{background:#dafbe1;font-weight:600}tr.baseline td:first-child{font-weight:600}"
BEST_CLASS, BASELINE_CLASS = ' class="best"', ' class="baseline"'
EXAMPLES_NOTE = "Items where a 0/1 scorer differs between cells, with each cell's output (its first sample)."


def render_matrix(matrix: SweepMatrix, fmt_name: str) -> str:
    """The matrix as ``html``, ``md`` or ``json`` text."""
    if fmt_name == "html":
        return matrix_html(matrix)
    if fmt_name == "md":
        return matrix_markdown(matrix)
    if fmt_name == "json":
        return json.dumps(matrix_record(matrix), indent=2, allow_nan=False) + "\n"
    raise ValueError(f"unknown sweep report format {fmt_name!r}; use one of {', '.join(FORMATS)}")


def value_cell(value: CellValue | None) -> str:
    """``value [low, high] n=N`` (``—`` where the cell lacks the metric)."""
    if value is None:
        return "—"
    v = value.value
    return f"{fmt(v.value)} [{fmt(v.ci_low)}, {fmt(v.ci_high)}] n={v.n}"


def delta_cell(value: CellValue | None) -> str:
    """``+delta [low, high] q=…`` and the verdict when significant; ``—`` where nothing was compared."""
    if value is None or value.delta is None:
        return "—"
    d = value.delta
    signed = [("—" if text == "—" else ("+" + text if not text.startswith("-") else text))
              for text in (fmt(d.delta), fmt(d.ci_low), fmt(d.ci_high))]
    note = "" if d.verdict.startswith("no ") else f" {d.verdict}"
    return f"{signed[0]} [{signed[1]}, {signed[2]}] q={fmt(d.q_value)}{note}"


def _arrow(higher_is_better: bool) -> str:
    return "↑" if higher_is_better else "↓"


def _intro(matrix: SweepMatrix) -> str:
    return (f"Baseline cell: {matrix.baseline}. Deltas are paired on the items a cell shares with the baseline "
            f"(unpaired for run-level metrics); q-values: Benjamini–Hochberg over the matrix's {matrix.tests} "
            "tests. Best cell per metric in bold (★).")


def matrix_markdown(matrix: SweepMatrix) -> str:
    """Header, the values table (★ best), the deltas table and the items the cells disagree on."""
    names = [f"{md_cell(c.name)} {_arrow(c.higher_is_better)}" for c in matrix.metrics]
    lines = [f"# {md_cell(header_line(matrix), 300)}", "", md_cell(_intro(matrix), 1000), "",
             "## Values [95% CI]", "", "| cell | run | status | " + " | ".join(names) + " |",
             "|---|---|---|" + "---|" * len(names)]
    for row in matrix.rows:
        cells = []
        for column in matrix.metrics:
            value = row.values.get(column.name)
            text = value_cell(value)
            cells.append(f"**{text} ★**" if value is not None and value.best else text)
        lines.append(f"| {_md_label(row.label, row.baseline)} | {row.run_id or '—'} | {row.status} | "
                     + " | ".join(cells) + " |")
    lines += ["", f"## Delta against {md_cell(matrix.baseline)}", "",
              "| cell | shared items | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for row in matrix.rows:
        if row.baseline:
            continue
        shared = "—" if row.shared_items is None else str(row.shared_items)
        lines.append(f"| {_md_label(row.label, False)} | {shared} | "
                     + " | ".join(delta_cell(row.values.get(c.name)) for c in matrix.metrics) + " |")
    lines += _markdown_examples(matrix)
    return "\n".join(lines) + "\n"


def _md_label(label: str, baseline: bool) -> str:
    return md_cell(label) + (" (baseline)" if baseline else "")


def _markdown_examples(matrix: SweepMatrix) -> list[str]:
    if not matrix.examples:
        return ["", "## Items the cells disagree on", "", "None."]
    labels = [row.label for row in matrix.rows if any(row.label in e.outputs for e in matrix.examples)]
    lines = ["", f"## Items the cells disagree on ({matrix.disagreements}; first {len(matrix.examples)})", "",
             EXAMPLES_NOTE, "", "| item | question | scorers | " + " | ".join(md_cell(x) for x in labels) + " |",
             "|---|---|---|" + "---|" * len(labels)]
    for example in matrix.examples:
        outputs = [md_cell(example.outputs.get(label) or "—") for label in labels]
        lines.append(f"| {md_cell(example.key)} | {md_cell(example.question)} | "
                     f"{md_cell(', '.join(example.scorers))} | " + " | ".join(outputs) + " |")
    return lines


def matrix_html(matrix: SweepMatrix) -> str:
    """The matrix page; every user or model string is escaped, and the page runs no script."""
    e = escape
    names = [f"{c.name} {_arrow(c.higher_is_better)}" for c in matrix.metrics]
    parts = [f"<h1>{e(header_line(matrix))}</h1>", f"<p>{e(_intro(matrix))}</p>",
             '<h2>Values [95% CI]</h2><table class="matrix">' + _head(["cell", "run", "status", *names])
             + "".join(_html_value_row(matrix, row) for row in matrix.rows) + "</table>",
             f'<h2>Delta against {e(matrix.baseline)}</h2><table class="deltas">'
             + _head(["cell", "shared items", *names])
             + "".join(_html_delta_row(matrix, row) for row in matrix.rows if not row.baseline) + "</table>",
             _html_examples(matrix)]
    title = e(f"evaltune: sweep {matrix.sweep_id} ({matrix.name})")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}"><title>{title}</title>'
            f"<style>{CSS}{MATRIX_CSS}</style></head><body>" + "".join(parts) + "</body></html>\n")


def _html_value_row(matrix: SweepMatrix, row: MatrixRow) -> str:
    cells = []
    for column in matrix.metrics:
        value = row.values.get(column.name)
        best = value is not None and value.best
        cells.append(f"<td{BEST_CLASS if best else ''}>{escape(value_cell(value))}{' ★' if best else ''}</td>")
    return (f"<tr{BASELINE_CLASS if row.baseline else ''}><td>{escape(row.label)}"
            f"{' (baseline)' if row.baseline else ''}</td><td>{row.run_id or '—'}</td><td>{escape(row.status)}</td>"
            + "".join(cells) + "</tr>")


def _html_delta_row(matrix: SweepMatrix, row: MatrixRow) -> str:
    cells = [f'<td class="{_verdict_class(row.values.get(c.name))}">{escape(delta_cell(row.values.get(c.name)))}'
             "</td>" for c in matrix.metrics]
    shared = "—" if row.shared_items is None else str(row.shared_items)
    return f"<tr><td>{escape(row.label)}</td><td>{shared}</td>" + "".join(cells) + "</tr>"


def _head(names: list[str]) -> str:
    return "<tr>" + "".join(f"<th>{escape(name)}</th>" for name in names) + "</tr>"


def _verdict_class(value: CellValue | None) -> str:
    if value is None or value.delta is None or value.delta.verdict.startswith("no "):
        return "same"
    return value.delta.verdict


def _html_examples(matrix: SweepMatrix) -> str:
    if not matrix.examples:
        return "<h2>Items the cells disagree on</h2><p>None.</p>"
    labels = [row.label for row in matrix.rows if any(row.label in e.outputs for e in matrix.examples)]
    rows = []
    for example in matrix.examples:
        outputs = "".join(_output_cell(example.outputs.get(label), example.values.get(label, {})) for label in labels)
        rows.append(f'<tr><td>{escape(example.key)}</td><td><pre class="question">{escape(example.question)}</pre>'
                    f"</td><td>{escape(', '.join(example.scorers))}</td>{outputs}</tr>")
    return (f"<h2>Items the cells disagree on ({matrix.disagreements}; first {len(matrix.examples)})</h2>"
            f"<p>{escape(EXAMPLES_NOTE)}</p><table class=\"examples\">"
            + _head(["item", "question", "scorers", *labels]) + "".join(rows) + "</table>")


def _output_cell(output: str | None, values: dict[str, float]) -> str:
    if output is None:
        return "<td>—</td>"
    scores = ", ".join(f"{name} {value:g}" for name, value in values.items())
    return f'<td><pre class="output">{escape(output)}</pre><div class="context">{escape(scores)}</div></td>'
