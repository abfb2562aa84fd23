"""Hallucination scorers: abstention on unanswerable items, and support of an output by its source.

``context_support`` and ``grounded_hallucination`` check an output against its context (or, when
there is none, its references). The detector's weights and threshold (``metrics/detector.py``) were fitted by
``bench/validate_hallucination.py --fit`` on the calibration parts of public human-labelled consistency data
(Q², BEGIN, XSumFaith, FactCC, TruthfulQA) and of the project's own set; the bench prints the figures of the
other parts, which the fit never saw.

Before its calibrated detector, ``grounded_hallucination`` makes exact checks that need no calibration
(``structured_checks``): an output that matches its reference scores 0, and a structured output (JSON, code,
short list items, a number with a unit) is checked part by part. An item with neither context nor references
gets a reference-free signal, or an explicit "not applicable" that its run metrics count
(``grounded_hallucination_not_applicable``). tests/data/hallucination_cases.jsonl holds the cases it must get right.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

from evaltune.metrics.detector import DECISION_THRESHOLD, SUPPORT_THRESHOLD, grounded_result
from evaltune.metrics.grounding import Grounding, ground
from evaltune.metrics.judging import current_judge
from evaltune.metrics.records import NOT_APPLICABLE, Example, MetricValue, ScoreResult
from evaltune.metrics.registry import scorer
from evaltune.metrics.scorers.entities import entity_check, source_texts
from evaltune.metrics.scorers.structured_checks import reference_match, structural_result
from evaltune.metrics.stats.intervals import mean_with_ci
from evaltune.metrics.structured import shape
from evaltune.metrics.text import fold_accents

# Phrases by which a model declines to answer or says the entity does not exist.
# Matched on the lower-cased, accent-folded output with straight apostrophes.
ABSTENTION_PATTERNS = (
    r"\bi (?:do not|don't|dont) (?:know|have (?:any )?(?:information|data|details))",
    r"\bi(?:'m| am) (?:not (?:sure|aware|familiar|certain)|unable to|unsure)",
    r"\bi (?:cannot|can't|could not|couldn't|can not) (?:find|answer|provide|verify|confirm|say|determine)",
    r"\b(?:there is|there's|i have|i've found) no (?:information|record|data|evidence|known|such)",
    r"\bno (?:information|record|data) (?:is )?(?:available|about|on|exists)",
    r"\b(?:does|do|did) not (?:exist|appear to exist)\b",
    r"\b(?:doesn't|don't|didn't) (?:exist|appear to exist)\b",
    r"\b(?:is|are|was|seems to be|appears to be) (?:a )?(?:fictional|fictitious|made[- ]up|imaginary|not real)",
    r"\bnot (?:a )?real (?:place|person|country|event|company|product)",
    r"\bunknown to me\b",
    r"\bnot aware of any\b",
    r"\bi(?:'m| am) not able to (?:find|answer|provide)",
)
_ABSTENTION = re.compile("|".join(ABSTENTION_PATTERNS))


def abstains(output: str) -> bool:
    """True when the output declines to answer ("I don't know", "there is no such country", ...)."""
    text = fold_accents(output).lower().replace("’", "'")
    return _ABSTENTION.search(text) is not None


@scorer("abstention", family="hallucination", needs=("abstention",))
def abstention(example: Example) -> ScoreResult:
    """On unanswerable items (fictional entities): 1 if the model says it does not know, 0 if it answers.

    A confident answer about something that does not exist is a hallucination, so the
    ``hallucinated`` detail is the complement of the value.
    """
    if not example.expect_abstention:
        return NOT_APPLICABLE
    declined = abstains(example.output)
    return ScoreResult(float(declined), {"abstained": declined, "hallucinated": not declined})


# --- grounded in a context or reference ---
_NO_SOURCE = ScoreResult(None, {"reason": "needs a context or references to check the output against"})


def _groundings(examples: Sequence[Example], negations: bool = True) -> list[Grounding | None]:
    """The grounding of each example that has a source; None for those without."""
    picked = [e for e in examples if source_texts(e)]
    found = iter(ground([e.output for e in picked], ["\n".join(source_texts(e)) for e in picked], negations))
    return [next(found) if source_texts(e) else None for e in examples]


@scorer("context_support", family="hallucination", needs=("context",), batched=True)
def context_support(examples: Sequence[Example]) -> list[ScoreResult]:
    """Share of output sentences whose MiniLM similarity to the context (or references) reaches the threshold."""
    return [_NO_SOURCE if g is None else _support_result(g) for g in _groundings(examples, negations=False)]


def _support_result(grounding: Grounding) -> ScoreResult:
    sentences = [
        {"sentence": s.sentence, "similarity": round(s.similarity, 4), "closest": s.closest,
         "supported": s.similarity >= SUPPORT_THRESHOLD}
        for s in grounding.sentences
    ]
    return ScoreResult(grounding.supported_share(SUPPORT_THRESHOLD), {"threshold": SUPPORT_THRESHOLD,
                                                                      "sentences": sentences})


def _nli(examples: Sequence[Example]) -> list[float | None]:
    """Each example's highest sentence contradiction probability, or all None when no NLI model is named."""
    from evaltune.metrics.model_loaders.judge_models import model_from_env
    from evaltune.metrics.scorers.judges import NLI_ENV, nli_contradictions

    model = model_from_env(NLI_ENV)
    if model is None or not examples:
        return [None] * len(examples)
    scored = nli_contradictions(model, [("\n".join(source_texts(e)), e.output) for e in examples])
    return [max((p for _, p in sentences), default=0.0) for sentences in scored]


@scorer("grounded_hallucination", family="hallucination", higher_is_better=False, needs=("context", "judge"),
        batched=True, aggregate=lambda examples, results: _hallucination_aggregate(results))
def grounded_hallucination(examples: Sequence[Example]) -> list[ScoreResult]:
    """0-1 hallucination score vs the context or references (1 = hallucinated); reference-free without either.

    An output that matches its reference (``structured_checks.reference_match``) scores 0; a structured one (JSON,
    code, a list, a number with a unit) is checked part by part; prose goes to the calibrated detector
    (``metrics.detector``): unsupported entities, the weakest unit's MiniLM similarity and negation flips, with
    EVALTUNE_NLI_MODEL's contradiction probability as a maximum when it names a model. An item with neither
    reference nor context gets a reference-free signal or an explicit "not applicable" (``without_source``).
    ``details["signal"]`` says which check scored the output; ``details["hallucinated"]`` applies
    DECISION_THRESHOLD.
    """
    has_source = [bool(source_texts(e)) for e in examples]
    sourced = iter(checked_against_sources([e for e, ok in zip(examples, has_source, strict=True) if ok]))
    unsourced = iter(without_source([e for e, ok in zip(examples, has_source, strict=True) if not ok]))
    return [next(sourced) if ok else next(unsourced) for ok in has_source]


def checked_against_sources(examples: Sequence[Example]) -> list[ScoreResult]:
    """The grounded_hallucination result of each example, every one of which has a context or references: its
    reference match, else its structural check, else the detector's verdict."""
    entities = entity_check(examples)
    decided = [reference_match(example, found) or structural_result(example)
               for example, found in zip(examples, entities, strict=True)]
    undecided = [i for i, result in enumerate(decided) if result is None]
    detected = iter(_detected([examples[i] for i in undecided], [entities[i] for i in undecided]))
    return [result if result is not None else next(detected) for result in decided]


def _detected(examples: Sequence[Example], entities: Sequence[ScoreResult]) -> list[ScoreResult]:
    results = []
    for example, found, grounding, contradiction in zip(examples, entities, _groundings(examples), _nli(examples),
                                                          strict=True):
        assert grounding is not None and found.value is not None  # every example here has a source
        verdict = grounded_result(found.value, found.details["unsupported"], grounding, contradiction)
        results.append(ScoreResult(verdict.value, {**verdict.details, "signal": "detector",
                                                   "checked_as": shape(example.output)}))
    return results


# --- items with neither reference nor context ---
NOT_CHECKABLE = ("no reference or context to check the output against, no other samples of the item (set "
                 "generation.samples above 1 for self-consistency) and no judge (set EVALTUNE_JUDGE_MODEL or the "
                 "suite's judge:)")


def without_source(examples: Sequence[Example]) -> list[ScoreResult]:
    """A reference-free verdict for each example, none of which has a context or references, by the first signal
    it has: the item says the thing asked about does not exist (``expect_abstention``), the named judge, the
    item's other samples (each checked as a source would be), else not applicable, with why."""
    grader = current_judge()
    judged = [e for e in examples if not e.expect_abstention and grader is not None]
    graded = iter(_judged(judged) if judged else [])
    sampled = [e for e in examples if not e.expect_abstention and grader is None and _samples(e)]
    agreed = iter(_self_consistency(sampled) if sampled else [])
    results = []
    for example in examples:
        if example.expect_abstention:
            declined = abstains(example.output)
            results.append(ScoreResult(0.0 if declined else 1.0, {
                "signal": "abstention", "abstained": declined, "hallucinated": not declined,
                "threshold": DECISION_THRESHOLD}))
        elif grader is not None:
            results.append(next(graded))
        elif _samples(example):
            results.append(next(agreed))
        else:
            results.append(ScoreResult(None, {"not_applicable": True, "reason": NOT_CHECKABLE}))
    return results


def _samples(example: Example) -> list[str]:
    return [s for s in example.samples if s.strip()]


def _judged(examples: Sequence[Example]) -> list[ScoreResult]:
    """The judge's factual-accuracy grade (``judges.judge_request``), 1 - grade on 0-1."""
    from evaltune.metrics.scorers.judges import JUDGE_SCALE, judge_request

    grader = current_judge()
    assert grader is not None
    results = []
    for graded in grader.rubric([judge_request(e) for e in examples]):
        details = {"signal": "judge", "judge": grader.describe(), "method": graded.method, "score": graded.score,
                   "scale": JUDGE_SCALE, "judge_reason": graded.reason, "threshold": DECISION_THRESHOLD}
        if graded.normalized is None:
            results.append(ScoreResult(None, {**details, "not_applicable": True,
                                              "reason": f"the judge gave no usable grade: {graded.reason}"}))
            continue
        value = 1.0 - graded.normalized
        results.append(ScoreResult(value, {**details, "hallucinated": value >= DECISION_THRESHOLD}))
    return results


def _self_consistency(examples: Sequence[Example]) -> list[ScoreResult]:
    """SelfCheckGPT with this scorer's own checks: the output is checked against each other sample of its item as
    if that sample were its context, and the verdicts are averaged. An invented detail changes from sample to
    sample, so it goes unsupported; a fact the model knows recurs."""
    pairs = [(i, replace(e, context=sample, references=(), samples=()))
             for i, e in enumerate(examples) for sample in _samples(e)]
    per_sample: list[list[float]] = [[] for _ in examples]
    for (i, _), result in zip(pairs, checked_against_sources([pair for _, pair in pairs]), strict=True):
        if result.value is not None:
            per_sample[i].append(result.value)
    results = []
    for example, values in zip(examples, per_sample, strict=True):
        if not values:
            results.append(ScoreResult(None, {"not_applicable": True, "signal": "self_consistency",
                                              "reason": "no sample of the item could be compared with the output"}))
            continue
        value = sum(values) / len(values)
        results.append(ScoreResult(value, {
            "signal": "self_consistency", "n_samples": len(_samples(example)),
            "per_sample": [round(v, 4) for v in values], "hallucinated": value >= DECISION_THRESHOLD,
            "threshold": DECISION_THRESHOLD}))
    return results


def _hallucination_aggregate(results: Sequence[ScoreResult]) -> list[MetricValue]:
    """The mean score and the share of outputs flagged (score at or above the decision threshold), over the
    outputs that could be checked; and the share that could not (``grounded_hallucination_not_applicable``, over
    every output, with the count and the reasons), so that a rate over few checked outputs is never read as one
    over all."""
    if not results:
        return []
    scored = [r for r in results if r.value is not None]
    skipped = Counter(str(r.details.get("reason", "not applicable")) for r in results if r.value is None)
    signals = Counter(str(r.details.get("signal", "detector")) for r in scored)
    missing = mean_with_ci([float(r.value is None) for r in results])
    not_applicable = MetricValue("grounded_hallucination_not_applicable", missing.value, missing.ci_low,
                                 missing.ci_high, missing.n, {"count": len(results) - len(scored),
                                                              "checked": len(scored), "reasons": dict(skipped)})
    if not scored:
        return [not_applicable]
    mean = mean_with_ci([r.value for r in scored if r.value is not None])
    rate = mean_with_ci([float(bool(r.details["hallucinated"])) for r in scored])
    return [
        MetricValue("grounded_hallucination", mean.value, mean.ci_low, mean.ci_high, mean.n,
                    {"signals": dict(signals)}),
        MetricValue("grounded_hallucination_rate", rate.value, rate.ci_low, rate.ci_high, rate.n,
                    {"threshold": DECISION_THRESHOLD, "checked": len(scored), "total": len(results)}),
        not_applicable,
    ]
