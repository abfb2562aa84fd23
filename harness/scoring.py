"""Score a stored run: read its outputs, call the registered scorers, check the items' assertions, store scores
and aggregates.

Used by the runner after generation and by ``evaltune score`` to re-score without regenerating (which checks the
assertions again and replaces their rows, as it does a scorer's).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from evaltune.db import queries
from evaltune.db.evaluation import Generation, SuiteItem
from evaltune.harness.assertion_scores import score_assertions
from evaltune.harness.judges.config import JudgeSpec, judge_from_settings
from evaltune.harness.judges.judge import judging_for
from evaltune.harness.store_records import stored_assertions
from evaltune.metrics.assertions.names import ASSERTION_SCORERS
from evaltune.metrics.records import Assertion, Example
from evaltune.metrics.registry import ScorerSpec, get_scorer
from evaltune.progress import Progress


@dataclass(frozen=True)
class MetricRow:
    name: str
    scorer: str
    family: str
    higher_is_better: bool
    value: float
    ci_low: float
    ci_high: float
    n: int
    details: dict[str, Any] = field(default_factory=dict)


def score_run(session: Session, run_id: int, scorer_names: tuple[str, ...] | list[str],
              judge: JudgeSpec | None = None) -> list[MetricRow]:
    """Score every output of ``run_id`` with each scorer and check its item's assertions; store the scores, the
    scorers' metrics and the assertions' (``harness.assertion_scores``).

    ``judge`` answers the judged checks (``llm-rubric``, the ``judge`` scorer); None: the judge
    ``EVALTUNE_JUDGE_MODEL`` names, if any. It is loaded only when a check asks it, and its answers are cached in
    the store through ``session``."""
    specs = [get_scorer(name) for name in scorer_names]
    generations = _load_generations(session, run_id)
    examples = _examples(generations)
    has_assertions = any(e.assertions for e in examples)
    metrics: list[MetricRow] = []
    judge = judge if judge is not None else judge_from_settings()
    with (judging_for(judge, session),
          Progress(f"scoring run {run_id}", total=len(specs) + has_assertions, unit="scorer") as progress):
        for spec in specs:
            progress.note(spec.name)
            metrics += _score_with(session, run_id, spec, generations, examples)
            progress.advance()
        if has_assertions:
            progress.note("assertions")
            metrics += [MetricRow(m.name, scorer, "quality", True, m.value, m.ci_low, m.ci_high, m.n, m.details)
                        for scorer, m in score_assertions(session, run_id, generations, examples)]
            progress.advance()
    replaced = [spec.name for spec in specs] + list(ASSERTION_SCORERS)
    queries.replace_run_metrics(session, run_id, replaced, [m.__dict__ for m in metrics])
    return metrics


def _score_with(session: Session, run_id: int, spec: ScorerSpec, generations: list[Generation],
                examples: list[Example]) -> list[MetricRow]:
    """Score every output with one scorer, store the scores, and return its metrics."""
    results = spec.score_batch(examples)
    queries.insert_scores(session, [
        {"run_id": run_id, "generation_id": g.id, "item_id": g.item_id, "scorer": spec.name,
         "value": r.value, "details": r.details}
        for g, r in zip(generations, results, strict=True)
    ])
    return [
        MetricRow(m.name, spec.name, spec.family, spec.higher_is_better, m.value, m.ci_low, m.ci_high, m.n, m.details)
        for m in spec.aggregate(examples, results)
    ]


def _load_generations(session: Session, run_id: int) -> list[Generation]:
    query = (
        select(Generation)
        .where(Generation.run_id == run_id)
        .options(joinedload(Generation.item))
        .order_by(Generation.item_id, Generation.sample_index)
    )
    return list(session.scalars(query))


def _examples(generations: list[Generation]) -> list[Example]:
    outputs_by_item: dict[int, list[str]] = defaultdict(list)
    assertions: dict[int, tuple[Assertion, ...]] = {}
    for g in generations:
        outputs_by_item[g.item_id].append(g.output)
        if g.item_id not in assertions:  # read once per item, not per sample
            assertions[g.item_id] = stored_assertions(g.item)
    return [_example(g, outputs_by_item[g.item_id], assertions[g.item_id]) for g in generations]


def _example(g: Generation, item_outputs: list[str], assertions: tuple[Assertion, ...]) -> Example:
    item: SuiteItem = g.item
    others = list(item_outputs)
    others.remove(g.output)
    return Example(
        item_id=item.key,
        prompt=g.prompt,
        output=g.output,
        references=tuple(item.references),
        context=item.context,
        expect_abstention=item.expect_abstention,
        choices=tuple(item.choices),
        gold=tuple(item.gold),
        **_logprob_fields(item, g),
        samples=tuple(others),
        tags=tuple(item.tags),
        group=item.group,
        attribute=item.attribute,
        value=item.value,
        metadata=dict(item.item_metadata),
        assertions=assertions,
        latency_ms=g.latency_s * 1000.0 if g.latency_s else None,
    )


def _logprob_fields(item: SuiteItem, g: Generation) -> dict[str, tuple[Any, ...]]:
    """A choice item's log-prob per choice; a generated output's [logprob, tokens] per reference, when its
    references were scored (see ``harness.runner``)."""
    if item.choices:
        return {"choice_logprobs": tuple(g.choice_logprobs or ())}
    pairs = g.reference_logprobs or []
    return {"reference_logprobs": tuple(float(lp) for lp, _ in pairs),
            "reference_tokens": tuple(int(n) for _, n in pairs)}
