"""Plain-text and JSON renderings of a run for the terminal.

The JSON (``run --json``, ``runs show --json``) carries ``schema_version`` so that scripts reading it can tell
a later shape from this one. Version 1 is the unversioned JSON of earlier releases; 2 only adds the field.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evaltune.db.evaluation import Run
    from evaltune.evaluate import Evaluation

RUN_SCHEMA_VERSION = 2


def _fmt(value: float) -> str:
    return "—" if value is None or math.isnan(value) else f"{value:.3f}"


def metrics_table(metrics: list[dict[str, Any]], fold: bool = False) -> str:
    """metric | family | value | 95% CI | n | p | note, one row per metric (``fold``: one per bias scorer, its
    worst attribute; see ``reports.run_metrics``), p where a metric has a test (bias gaps), then what the notes mean.
    """
    from evaltune.reports.run_metrics import metric_lines, table_notes

    lines = metric_lines(metrics, fold=fold)
    header = ("metric", "family", "value", "95% CI", "n", "p", "note")
    rows = [
        (line.name + (" ↑" if line.higher_is_better else " ↓"), line.family, _fmt(line.value),
         f"[{_fmt(line.ci_low)}, {_fmt(line.ci_high)}]", str(line.n),
         "" if line.p_value is None else f"{line.p_value:.3f}", line.note)
        for line in lines
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in [header, *rows]]
    text.insert(1, "  ".join("-" * w for w in widths))
    notes = table_notes(lines) + skipped_assertion_lines(metrics) + not_checked_lines(metrics)
    return "\n".join(text + (["", *notes] if notes else []))


def skipped_assertion_lines(metrics: list[dict[str, Any]]) -> list[str]:
    """One line per reason some assertions were not judged ("3 assertions skipped: set EVALTUNE_JUDGE_MODEL=...
    to enable llm-rubric"), from ``pass_rate``'s details: a pass rate is read knowing what it left out."""
    pass_rate = next((m for m in metrics if m["name"] == "pass_rate"), None)
    reasons = ((pass_rate or {}).get("details") or {}).get("skipped_reasons") or {}
    return [f"{count} assertion{'' if count == 1 else 's'} skipped: {str(reason).removeprefix('skipped: ')}"
            for reason, count in reasons.items()]


def not_checked_lines(metrics: list[dict[str, Any]]) -> list[str]:
    """What a ``..._not_applicable`` metric left out, in words ("grounded_hallucination: 1 of 6 outputs not
    checked (...); its rate covers the other 5"), one line per reason: a rate is read knowing what it is over."""
    lines = []
    for metric in metrics:
        details = metric.get("details") or {}
        if not str(metric["name"]).endswith("_not_applicable") or not details.get("count"):
            continue
        scorer = str(metric["name"]).removesuffix("_not_applicable")
        for reason, count in (details.get("reasons") or {}).items():
            lines.append(f"{scorer}: {count} of {metric['n']} outputs not checked: {reason}")
        lines.append(f"{scorer}: its mean and rate cover the {details.get('checked', 0)} outputs checked")
    return lines


def format_summary(evaluation: Evaluation, as_json: bool = False, show_all: bool = False) -> str:
    """What ``evaltune run`` prints: a header and the metrics table, each bias scorer's attributes folded into
    one row unless ``show_all``; or (``as_json``) every metric as JSON."""
    outcome = evaluation.outcome
    metrics = [m.__dict__ for m in outcome.metrics]
    if as_json:
        return json.dumps({"schema_version": RUN_SCHEMA_VERSION, "run_id": outcome.run_id,
                           "suite": evaluation.suite.name, "model": evaluation.model.display_name,
                           "resumed": outcome.resumed, "reused": outcome.reused, "load_s": round(evaluation.load_s, 3),
                           "stats": outcome.stats, "metrics": metrics}, indent=2)
    stats = outcome.stats
    head = [
        f"run {outcome.run_id}: suite {evaluation.suite.name} on {evaluation.model.display_name}"
        + (" (resumed)" if outcome.resumed else "")
        + (" (the same run, already in the store: nothing generated or stored)" if outcome.reused else ""),
        f"outputs: {stats.get('outputs', 0)} ({outcome.generated} generated, {outcome.from_cache} from cache,"
        f" {outcome.already_stored} already stored); model load {evaluation.load_s:.1f}s,"
        f" run {stats.get('total_s', 0):.1f}s"
        + (f", {stats['tokens_per_s']:.1f} tok/s" if stats.get("tokens_per_s") else ""),
        "",
    ]
    return "\n".join(head) + metrics_table(metrics, fold=not show_all)


def run_as_dict(run: Run) -> dict[str, Any]:
    """A stored run as ``runs show --json`` prints it: settings, timings and metrics, with ``schema_version``."""
    return {
        "schema_version": RUN_SCHEMA_VERSION,
        "id": run.id,
        "suite": run.suite.name,
        "suite_version": run.suite.content_hash[:12],
        "model": run.model_version.name,
        "model_version_id": run.model_version_id,
        "status": run.status,
        "seed": run.seed,
        "item_limit": run.item_limit,  # the first N items of the suite; null: all
        "generation": run.generation,
        "scorers": run.scorers,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "stats": run.stats,
        "error": run.error,
        "metrics": [
            {"name": m.name, "family": m.family, "higher_is_better": m.higher_is_better, "value": m.value,
             "ci_low": m.ci_low, "ci_high": m.ci_high, "n": m.n, "details": m.details}
            for m in sorted(run.metrics, key=lambda m: m.id)  # as stored: the order the run's summary listed them
        ],
    }
