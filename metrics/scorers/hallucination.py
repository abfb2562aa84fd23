"""Hallucination scorers: abstention on unanswerable items, and support of an output by its source.

``context_support`` and ``grounded_hallucination`` check an output against its context (or, when
there is none, its references). Their thresholds and weights were calibrated on the "calibrate"
half of ``tests/data/hallucination_labelled.jsonl`` (144 labelled outputs written for this project)
by ``bench/validate_hallucination.py --fit``, which prints the numbers below; the other half is
held out for the validation figures the same script prints.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from evaltune.metrics.detector import (  # noqa: F401  (re-exported: the calibrated constants live in detector)
    COMBINATION_BIAS,
    COMBINATION_WEIGHTS,
    DECISION_THRESHOLD,
    SUPPORT_THRESHOLD,
    combine,
    grounded_result,
)
from evaltune.metrics.grounding import Grounding, ground
from evaltune.metrics.records import NOT_APPLICABLE, Example, MetricValue, ScoreResult
from evaltune.metrics.registry import scorer
from evaltune.metrics.scorers.entities import entity_check, source_texts
from evaltune.metrics.stats.intervals import mean_with_ci
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
    if model is None:
        return [None] * len(examples)
    picked = [e for e in examples if source_texts(e)]
    scored = iter(nli_contradictions(model, [("\n".join(source_texts(e)), e.output) for e in picked]))
    return [max((p for _, p in next(scored)), default=0.0) if source_texts(e) else None for e in examples]


@scorer("grounded_hallucination", family="hallucination", higher_is_better=False, needs=("context",), batched=True,
        aggregate=lambda examples, results: _hallucination_aggregate(results))
def grounded_hallucination(examples: Sequence[Example]) -> list[ScoreResult]:
    """0-1 hallucination score vs the context or references (1 = hallucinated): entities, MiniLM, negations, NLI.

    The signals are unsupported entities, the weakest sentence's MiniLM similarity and negation flips,
    combined by the calibrated logistic weights above; when EVALTUNE_NLI_MODEL names a model its
    contradiction probability joins as a maximum. ``details["hallucinated"]`` applies DECISION_THRESHOLD.
    """
    entity_results = entity_check(examples)
    results = []
    for entities, grounding, contradiction in zip(entity_results, _groundings(examples), _nli(examples), strict=True):
        if grounding is None or entities.value is None:
            results.append(_NO_SOURCE)
            continue
        results.append(grounded_result(entities.value, entities.details["unsupported"], grounding, contradiction))
    return results


def _hallucination_aggregate(results: Sequence[ScoreResult]) -> list[MetricValue]:
    """The mean score and the share of outputs flagged (score at or above the decision threshold)."""
    scored = [r for r in results if r.value is not None]
    if not scored:
        return []
    mean = mean_with_ci([r.value for r in scored if r.value is not None])
    rate = mean_with_ci([float(bool(r.details["hallucinated"])) for r in scored])
    return [
        MetricValue("grounded_hallucination", mean.value, mean.ci_low, mean.ci_high, mean.n),
        MetricValue("grounded_hallucination_rate", rate.value, rate.ci_low, rate.ci_high, rate.n,
                    {"threshold": DECISION_THRESHOLD}),
    ]
