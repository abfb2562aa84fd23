"""Model-based hallucination scorers that take a model the user names: ``nli_contradiction`` and ``judge``.

No NLI or judge model ships offline, so nothing is downloaded. ``nli_contradiction`` reads its model from

    EVALTUNE_NLI_MODEL=/path/to/nli-model        # AutoModelForSequenceClassification with a "contradiction" label

(an endpoint too, ``openai:URL`` with ``EVALTUNE_NLI_MODEL_NAME``: it is then asked the NLI question in words).
``judge`` asks the judge the harness hands over through ``metrics.judging`` (the suite's ``judge:``, ``--judge`` or
``EVALTUNE_JUDGE_MODEL``): a G-Eval faithfulness grade from 1 to 5, turned into 0 (faithful) to 1 (hallucinated).
Without its model, each scorer returns no value for any item, with ``skipped`` and the reason in its details,
and its aggregate logs one warning and reports no metric.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from evaltune.metrics.judging import JUDGE_ENV, RubricRequest, current_judge, no_judge_reason
from evaltune.metrics.model_loaders.judge_models import (
    ModelRef,
    contradiction_probabilities,
    model_from_env,
    yes_probabilities,
)
from evaltune.metrics.records import Example, MetricValue, ScoreResult
from evaltune.metrics.registry import Aggregate, mean_aggregate, scorer
from evaltune.metrics.scorers.entities import source_texts
from evaltune.metrics.sentences import split_sentences

log = logging.getLogger(__name__)

NLI_ENV = "EVALTUNE_NLI_MODEL"

JUDGE_SCALE = 5
FAITHFUL_TO_SOURCE = ("Faithfulness: every claim in the answer is supported by the context. 1 = most claims are "
                      "unsupported or contradict the context; 5 = every claim is supported.")
FACTUALLY_RIGHT = ("Factual accuracy: the answer is factually correct and makes nothing up. 1 = mostly made up or "
                   "wrong; 5 = entirely correct.")
NLI_PROMPT = (
    "Premise:\n{premise}\n\nStatement: {hypothesis}\n\n"
    "Does the premise contradict the statement? Reply Yes or No.\nReply:"
)


def how_to_enable(variable: str, what: str) -> str:
    """The setting that turns on a model-based check which has no model."""
    return f"set {variable}=<local folder, hub id or openai:http://HOST:PORT/v1> to enable {what}"


def skipped(variable: str, scorer_name: str) -> ScoreResult:
    """The result of a model-based scorer when no model is named: no value, and how to enable it."""
    return ScoreResult(None, {"skipped": True, "reason": f"skipped: {how_to_enable(variable, scorer_name)}"})


def _skip_aware_mean(name: str, variable: str) -> Aggregate:
    mean = mean_aggregate(name)

    def aggregate(examples: Sequence[Example], results: Sequence[ScoreResult]) -> list[MetricValue]:
        if results and all(r.details.get("skipped") for r in results):
            log.warning("%s skipped: set %s=<local folder, hub id or openai:URL> to enable it", name, variable)
            return []
        return mean(examples, results)

    return aggregate


def nli_contradictions(model: ModelRef, pairs: Sequence[tuple[str, str]]) -> list[list[tuple[str, float]]]:
    """For each (premise, output): every output sentence with its P(contradiction), in one batched pass."""
    flat = [(i, premise, sentence) for i, (premise, output) in enumerate(pairs)
            for sentence in (split_sentences(output) or [output])]
    if model.endpoint:
        prompts = [NLI_PROMPT.format(premise=p, hypothesis=h) for _, p, h in flat]
        probabilities = [p if p is not None else 0.0 for p in yes_probabilities(model, prompts)]
    else:
        probabilities = contradiction_probabilities(model.location, [p for _, p, _ in flat], [h for _, _, h in flat])
    per_output: list[list[tuple[str, float]]] = [[] for _ in pairs]
    for (i, _, sentence), probability in zip(flat, probabilities, strict=True):
        per_output[i].append((sentence, float(probability)))
    return per_output


@scorer("nli_contradiction", family="hallucination", higher_is_better=False, needs=("context", "judge"),
        batched=True, aggregate=_skip_aware_mean("nli_contradiction", NLI_ENV))
def nli_contradiction(examples: Sequence[Example]) -> list[ScoreResult]:
    """Highest NLI contradiction probability of any output sentence against the context (EVALTUNE_NLI_MODEL)."""
    model = model_from_env(NLI_ENV)
    if model is None:
        return [skipped(NLI_ENV, "nli_contradiction") for _ in examples]
    picked = [e for e in examples if source_texts(e)]
    scored = iter(nli_contradictions(model, [("\n".join(source_texts(e)), e.output) for e in picked]))
    results = []
    for example in examples:
        if not source_texts(example):
            results.append(ScoreResult(None, {"reason": "needs a context or references as the premise"}))
            continue
        sentences = next(scored)
        value = max((p for _, p in sentences), default=0.0)
        details = {"model": model.describe(), "sentences": [{"sentence": s, "contradiction": round(p, 4)}
                                                            for s, p in sentences]}
        results.append(ScoreResult(value, details))
    return results


def judge_request(example: Example) -> RubricRequest:
    """What the judge is asked of an output: faithfulness to the item's source when it has one (its context or
    references), else factual accuracy."""
    sources = source_texts(example)
    if sources:
        return RubricRequest(example.prompt, example.output, FAITHFUL_TO_SOURCE, JUDGE_SCALE,
                             context="\n".join(sources))
    return RubricRequest(example.prompt, example.output, FACTUALLY_RIGHT, JUDGE_SCALE)


@scorer("judge", family="hallucination", higher_is_better=False, needs=("judge",), batched=True,
        aggregate=_skip_aware_mean("judge", JUDGE_ENV))
def judge(examples: Sequence[Example]) -> list[ScoreResult]:
    """How far the configured judge finds the output from faithful: 1 - its 1-5 grade on 0-1 (1 = hallucinated)."""
    grader = current_judge()
    if grader is None:
        return [ScoreResult(None, {"skipped": True, "reason": f"skipped: {no_judge_reason('judge')}"})
                for _ in examples]
    results = []
    for graded in grader.rubric([judge_request(e) for e in examples]):
        details = {"judge": grader.describe(), "method": graded.method, "score": graded.score,
                   "scale": JUDGE_SCALE, "reason": graded.reason}
        value = None if graded.normalized is None else 1.0 - graded.normalized
        results.append(ScoreResult(value, details))
    return results
