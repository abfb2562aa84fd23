"""One entry point for the command line and the app: compare two stored runs, render in a format."""

from __future__ import annotations

import json

from evaltune.db.engine import open_store
from evaltune.reports.compare import build_report
from evaltune.reports.gates import GateOutcome
from evaltune.reports.html import render_html
from evaltune.reports.markdown import render_markdown
from evaltune.reports.records import Report, report_to_dict

FORMATS = ("html", "md", "json")


def compare_runs(baseline_id: int, candidate_id: int, url: str | None = None) -> Report:
    """The comparison of two runs in the store at ``url`` (default: the configured store)."""
    store = open_store(url)
    try:
        with store.session_scope() as session:
            return build_report(session, baseline_id, candidate_id)
    finally:
        store.close()


def render_report(report: Report, fmt: str, gates: GateOutcome | None = None) -> str:
    """The report as ``html``, ``md`` or ``json`` text (gate results included when given)."""
    if fmt == "html":
        return render_html(report, gates)
    if fmt == "md":
        return render_markdown(report, gates)
    if fmt == "json":
        data = report_to_dict(report)
        if gates is not None:
            data["gates"] = [{"metric": r.rule.metric, "rule": r.rule.kind, "threshold": r.rule.threshold,
                              "passed": r.passed, "actual": r.actual, "message": r.message}
                             for r in gates.results]
            data["gates_passed"] = gates.passed
        return json.dumps(data, indent=2, allow_nan=False) + "\n"
    raise ValueError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")


def gate_runs(baseline_id: int, candidate_id: int, gate_file: str, url: str | None = None
              ) -> tuple[Report, GateOutcome]:
    """Compare two runs and check a gate file; the gate file is read first so that a bad one fails fast."""
    from evaltune.reports.gates import check_gates, load_gates

    rules = load_gates(gate_file)
    report = compare_runs(baseline_id, candidate_id, url)
    return report, check_gates(report, rules)
