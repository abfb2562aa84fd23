"""The comparison as one self-contained HTML file: inline CSS, inline SVG plots, no script.

All text that comes from users or models is passed through ``html.escape``; the page carries a
Content-Security-Policy that forbids scripts, so a hostile output shows as text and cannot run.
"""

from __future__ import annotations

import re
from html import escape

from evaltune.reports.gates import GateOutcome
from evaltune.reports.markdown import FLIPS_SHOWN, UNPAIRED_NOTE, flips_left_out, fmt, fmt_interval
from evaltune.reports.outputs import shorten
from evaltune.reports.records import UNPAIRED_TEST, FlippedItem, Report
from evaltune.reports.svg import delta_plot, distribution_plot, tag_heatmap

DISTRIBUTIONS_SHOWN = 12
CONTEXT_SHOWN = 160  # characters of a flipped item's context passage

CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#24292f;max-width:1200px}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{border:1px solid #d0d7de;padding:4px 8px;
text-align:left;vertical-align:top;font-size:13px}th{background:#f6f8fa}
.better{color:#1a7f37;font-weight:600}.worse{color:#cf222e;font-weight:600}
.pass{color:#1a7f37}.fail{color:#cf222e;font-weight:600}
pre{white-space:pre-wrap;max-width:420px;margin:0;font-size:12px}.plots{display:flex;flex-wrap:wrap;gap:12px}
.verdict{font-size:1.3rem}.context{color:#57606a;font-size:12px;max-width:420px;margin-top:4px}
"""
# No script, no requests, no forms, no <base>: even markup that escaped escaping could do nothing.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


def _row(cells: list[str], header: bool = False) -> str:
    tag = "th" if header else "td"
    return "<tr>" + "".join(f"<{tag}>{cell}</{tag}>" for cell in cells) + "</tr>"


def _table(header: list[str], rows: list[list[str]]) -> str:
    return "<table>" + _row([escape(h) for h in header], True) + "".join(_row(r) for r in rows) + "</table>"


def render_html(report: Report, gates: GateOutcome | None = None) -> str:
    """The report page; every user or model string is escaped."""
    b, c = report.baseline, report.candidate
    e = escape
    # A candidate from a degraded retune is said before anything else (retune.collapse).
    parts = [f'<p class="fail">{e(report.degraded)}</p>'] if report.degraded else []
    parts += [f"<h1>{e(c.model)} vs {e(b.model)} on {e(b.suite)}</h1>",
              f'<p class="verdict">Verdict: <span class="{e(report.verdict.split()[0])}">{e(report.verdict)}</span>'
              f"</p><p>Candidate run {c.id} against baseline run {b.id}: {report.shared_items} shared items "
              f"({report.baseline_only} only in the baseline, {report.candidate_only} only in the candidate).</p>",
              _differences(report)]
    if gates is not None:
        parts.append("<h2>Gates</h2>" + _table(["result", "rule", "detail"], [
            [f'<span class="{"pass" if r.passed else "fail"}">{"pass" if r.passed else "FAIL"}</span>',
             e(f"{r.rule.metric} {r.rule.kind}"), e(r.message)] for r in gates.results]))
    parts.append("<h2>Metrics</h2>" + _table(
        ["family", "metric", "baseline", "candidate", "delta [95% CI]", "test", "p", "q (BH)", "verdict"],
        [[e(m.family), e(m.name) + (" ↑" if m.higher_is_better else " ↓"), fmt_interval(m.baseline),
          fmt_interval(m.candidate), f"{fmt(m.delta)} [{fmt(m.delta_ci_low)}, {fmt(m.delta_ci_high)}]", e(m.test),
          fmt(m.p_value, 4), fmt(m.q_value, 4), f'<span class="{e(m.verdict.split()[0])}">{e(m.verdict)}</span>']
         for m in report.metrics]))
    if any(m.test == UNPAIRED_TEST for m in report.metrics):
        parts.append(f"<p>{e(UNPAIRED_NOTE.replace('*', ''))}</p>")
    # The plot shows paired deltas, item by item; run-level rows are in the table above.
    paired = [m for m in report.metrics if m.test != UNPAIRED_TEST]
    parts.append('<h2>Deltas</h2><div class="plots">' + delta_plot(paired) + "</div>")
    if report.tags:
        direction = {m.name: m.higher_is_better for m in report.metrics}
        parts.append('<h2>Per tag</h2><div class="plots">' + tag_heatmap(report.tags, direction) + "</div>")
    shown = list(report.distributions.items())[:DISTRIBUTIONS_SHOWN]
    parts.append('<h2>Score distributions</h2><p>grey: baseline, blue: candidate</p><div class="plots">'
                 + "".join(distribution_plot(name, bv, cv) for name, (bv, cv) in shown) + "</div>")
    parts += [_bias(report), _human(report), _flips(report), _lineage(report)]
    title = e(f"evaltune: run {c.id} vs run {b.id}")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}"><title>{title}</title>'
            f"<style>{CSS}</style></head><body>" + "".join(parts) + "</body></html>\n")


def _bias(report: Report) -> str:
    if not report.bias_gaps:
        return ""
    return "<h2>Bias gaps (smaller is fairer)</h2>" + _table(
        ["metric", "attribute", "baseline", "p", "candidate", "p", "change"],
        [[escape(g.metric), escape(g.attribute), fmt_interval(g.baseline), fmt(g.baseline_p, 4),
          fmt_interval(g.candidate), fmt(g.candidate_p, 4), fmt(g.change)] for g in report.bias_gaps])


def _human(report: Report) -> str:
    h = report.human
    if h is None:
        return ""
    out = ("<h2>Human ratings</h2>" + _table(["", "baseline", "candidate"], [
        ["mean Likert [95% CI]", fmt_interval(h.likert_baseline), fmt_interval(h.likert_candidate)]])
        + f"<p>A/B: candidate preferred {h.ab_wins}, baseline preferred {h.ab_losses}, ties {h.ab_ties}, "
          f"both bad {h.ab_both_bad}; win rate {fmt(h.ab_win_rate)} [{fmt(h.ab_ci_low)}, {fmt(h.ab_ci_high)}]</p>")
    out += "".join(f"<p>{escape(note)}</p>" for note in h.notes)  # ties by rule, selected items (reports.human)
    if h.bradley_terry:
        out += _table(["model", "Bradley–Terry log-strength [95% CI]"], [
            [escape(s.model), f"{fmt(s.strength)} [{fmt(s.ci_low)}, {fmt(s.ci_high)}]"] for s in h.bradley_terry])
    return out


def _flips(report: Report) -> str:
    if not report.flipped:
        return "<h2>Flipped items</h2><p>None.</p>"
    shown = report.flipped[:FLIPS_SHOWN]
    return (f"<h2>Flipped items ({len(report.flipped)}; first {len(shown)})</h2>" + _table(
        ["item", "question", "reference", "lost", "gained", "baseline output", "candidate output"],
        [[escape(f.key), _question(f), escape(" | ".join(f.references)) or "—", escape(", ".join(f.lost)),
          escape(", ".join(f.gained)), f'<pre class="output">{escape(f.baseline_output)}</pre>',
          f'<pre class="output">{escape(f.candidate_output)}</pre>'] for f in shown])
            + _left_out(report))


def _left_out(report: Report) -> str:
    text = flips_left_out(report)
    if not text:
        return ""
    return "<p>" + re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(text)) + "</p>"


def _question(flip: FlippedItem) -> str:
    """The item's question as its suite wrote it, with its context shortened; a report JSON from before
    questions were kept has only the prompt the model was given."""
    cell = f'<pre class="question">{escape(flip.question or flip.prompt)}</pre>'
    if flip.context:
        cell += f'<div class="context">context: {escape(shorten(flip.context, CONTEXT_SHOWN))}</div>'
    return cell


def _differences(report: Report) -> str:
    """How the runs were made differently, or that nothing but the outputs did."""
    if not report.differences:
        return ("<h2>What differed</h2><p>Nothing but the outputs: same model, suite version, generation settings, "
                "seed and items.</p>")
    return "<h2>What differed</h2>" + _table(
        ["", f"baseline (run {report.baseline.id})", f"candidate (run {report.candidate.id})", "note"],
        [[escape(d.what), escape(d.baseline), escape(d.candidate), escape(d.note)] for d in report.differences])


def _lineage(report: Report) -> str:
    if not report.lineage:
        return ""
    rows = []
    for entry in report.lineage:
        job = entry.get("retune_job") or {}
        dataset = job.get("dataset") or {}
        rows.append([str(entry["id"]), escape(str(entry["name"])), escape(str(entry.get("adapter_path") or "")),
                     escape(f"{job.get('id')} {job.get('method')} {job.get('status')}" if job else ""),
                     escape(f"{dataset.get('name')} ({dataset.get('strategy')})" if dataset else "")])
    return "<h2>Candidate lineage</h2>" + _table(["model", "name", "adapter", "retune job", "dataset"], rows)
