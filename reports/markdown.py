"""The comparison as Markdown, fit for a CI job summary (GitHub's $GITHUB_STEP_SUMMARY)."""

from __future__ import annotations

import math

from evaltune.reports.gates import GateOutcome
from evaltune.reports.records import UNPAIRED_TEST, Interval, Report

FLIPS_SHOWN = 20
UNPAIRED_NOTE = ("Rows tested *unpaired* are run-level numbers (a gap per attribute, a rate, a corpus score): "
                 "each run's own value, the delta's interval and p from the two runs' 95% intervals.")


def fmt(value: float | None, digits: int = 3) -> str:
    """A number for a table; ``—`` for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{digits}f}"


def fmt_interval(interval: Interval | None) -> str:
    """``value [low, high]`` or ``—``."""
    if interval is None:
        return "—"
    return f"{fmt(interval.value)} [{fmt(interval.ci_low)}, {fmt(interval.ci_high)}]"


def md_cell(text: str, limit: int = 80) -> str:
    """One line of text that is safe inside a Markdown table cell (no pipes, newlines or HTML tags)."""
    # Markdown tables break on pipes and newlines; model output must not close the table or inject HTML.
    flat = " ".join(text.split())
    flat = flat if len(flat) <= limit else flat[: limit - 1] + "…"
    return flat.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def flips_left_out(report: Report) -> str:
    """How many flipped items a page leaves out past the first ``FLIPS_SHOWN``, and the commands that list
    them all; "" when none is left out. A report of two large runs can flip tens of thousands of items: the page
    stays a summary whatever the runs' size."""
    left = len(report.flipped) - FLIPS_SHOWN
    if left <= 0:
        return ""
    return (f"{left} more flipped item{'s' if left > 1 else ''} not shown: "
            f"`evaltune report {report.baseline.id} {report.candidate.id} --format json` lists every one, "
            f"`evaltune runs outputs {report.candidate.id} --failures` the candidate's failed outputs.")


def render_markdown(report: Report, gates: GateOutcome | None = None) -> str:
    """The verdict, the metric table, bias gaps, human ratings, flips and lineage (gates when given)."""
    b, c = report.baseline, report.candidate
    # A candidate from a degraded retune is said before anything else (retune.collapse).
    lines = [md_cell(report.degraded, 1000), ""] if report.degraded else []
    lines += [f"# {md_cell(c.model)} vs {md_cell(b.model)} on {md_cell(b.suite)}", "",
              f"**Verdict: {report.verdict}** — run {c.id} (candidate) against run {b.id} (baseline), "
              f"{report.shared_items} shared items ({report.baseline_only} only in the baseline, "
              f"{report.candidate_only} only in the candidate).", ""]
    lines += _differences(report)
    if gates is not None:
        lines += ["## Gates", "", "| result | rule | detail |", "|---|---|---|"]
        lines += [f"| {'✅ pass' if r.passed else '❌ FAIL'} | {md_cell(r.rule.metric)} {r.rule.kind} | "
                  f"{md_cell(r.message, 200)} |" for r in gates.results]
        lines.append("")
    lines += ["## Metrics", "",
              "| family | metric | baseline | candidate | delta [95% CI] | test | p | q (BH) | verdict |",
              "|---|---|---|---|---|---|---|---|---|"]
    for m in report.metrics:
        arrow = "↑" if m.higher_is_better else "↓"
        lines.append(f"| {m.family} | {md_cell(m.name)} {arrow} | {fmt_interval(m.baseline)} | "
                     f"{fmt_interval(m.candidate)} | {fmt(m.delta)} [{fmt(m.delta_ci_low)}, {fmt(m.delta_ci_high)}]"
                     f" | {m.test} | {fmt(m.p_value, 4)} | {fmt(m.q_value, 4)} | {m.verdict} |")
    if any(m.test == UNPAIRED_TEST for m in report.metrics):
        lines += ["", UNPAIRED_NOTE]
    lines += _bias(report) + _human(report) + _flips(report) + _lineage(report)
    return "\n".join(lines) + "\n"


def _differences(report: Report) -> list[str]:
    """How the runs were made differently (model, suite version, settings, seed, items), or that nothing did."""
    if not report.differences:
        return ["## What differed", "",
                "Nothing but the outputs: same model, suite version, generation settings, seed and items.", ""]
    rows = [f"| {d.what} | {md_cell(d.baseline)} | {md_cell(d.candidate)} | {md_cell(d.note)} |"
            for d in report.differences]
    return ["## What differed", "",
            f"| | baseline (run {report.baseline.id}) | candidate (run {report.candidate.id}) | note |",
            "|---|---|---|---|", *rows, ""]


def _bias(report: Report) -> list[str]:
    if not report.bias_gaps:
        return []
    lines = ["", "## Bias gaps (smaller is fairer)", "",
             "| metric | attribute | baseline | p | candidate | p | change |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {md_cell(g.metric)} | {md_cell(g.attribute)} | {fmt_interval(g.baseline)} | {fmt(g.baseline_p, 4)} | "
              f"{fmt_interval(g.candidate)} | {fmt(g.candidate_p, 4)} | {fmt(g.change)} |" for g in report.bias_gaps]
    return lines


def _human(report: Report) -> list[str]:
    h = report.human
    if h is None:
        return []
    lines = ["", "## Human ratings", "", f"- Mean Likert: baseline {fmt_interval(h.likert_baseline)} "
             f"(n={h.likert_baseline.n}), candidate {fmt_interval(h.likert_candidate)} (n={h.likert_candidate.n})",
             f"- A/B: candidate preferred {h.ab_wins}, baseline preferred {h.ab_losses}, ties {h.ab_ties}, "
             f"both bad {h.ab_both_bad}; win rate {fmt(h.ab_win_rate)} [{fmt(h.ab_ci_low)}, {fmt(h.ab_ci_high)}]"]
    lines += [f"- {md_cell(note, 1000)}" for note in h.notes]  # ties by rule, selected items (reports.human)
    if h.bradley_terry:
        lines += ["", "| model | Bradley–Terry log-strength [95% CI] |", "|---|---|"]
        lines += [f"| {md_cell(s.model)} | {fmt(s.strength)} [{fmt(s.ci_low)}, {fmt(s.ci_high)}] |"
                  for s in h.bradley_terry]
    return lines


def _flips(report: Report) -> list[str]:
    if not report.flipped:
        return ["", "## Flipped items", "", "None."]
    lines = ["", f"## Flipped items ({len(report.flipped)}; first {min(FLIPS_SHOWN, len(report.flipped))})", "",
             "| item | question | reference | lost | gained | baseline output | candidate output |",
             "|---|---|---|---|---|---|---|"]
    # The question as the suite wrote it (a report JSON from before questions were kept has only the prompt).
    lines += [f"| {md_cell(f.key)} | {md_cell(f.question or f.prompt)} | {md_cell('; '.join(f.references), 40) or '—'}"
              f" | {md_cell(', '.join(f.lost))} | {md_cell(', '.join(f.gained))} | "
              f"{md_cell(f.baseline_output)} | {md_cell(f.candidate_output)} |" for f in report.flipped[:FLIPS_SHOWN]]
    left_out = flips_left_out(report)
    return lines + (["", left_out] if left_out else [])


def _lineage(report: Report) -> list[str]:
    if not report.lineage:
        return []
    lines = ["", "## Candidate lineage", ""]
    for entry in report.lineage:
        job = entry.get("retune_job")
        extra = ""
        if job:
            dataset = job.get("dataset") or {}
            extra = (f" — retune job {job['id']} ({job['method']}, {job['status']}), dataset "
                     f"{md_cell(str(dataset.get('name', '?')))} ({dataset.get('strategy', '?')})")
        lines.append(f"- model {entry['id']}: {md_cell(entry['name'])}{extra}")
    return lines
