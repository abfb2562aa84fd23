"""Model-based hallucination scorers that take a model the user names: ``nli_contradiction`` and ``judge``;
the same judge answers the suites' ``llm-rubric`` assertions (``rubric_yes_probabilities``).

No NLI or judge model ships offline, so nothing is downloaded: set

    EVALTUNE_NLI_MODEL=/path/to/nli-model        # AutoModelForSequenceClassification with a "contradiction" label
    EVALTUNE_JUDGE_MODEL=/path/to/causal-lm      # AutoModelForCausalLM (a local folder or a hub id)
    EVALTUNE_JUDGE_MODEL=openai:http://HOST:PORT/v1  EVALTUNE_JUDGE_MODEL_NAME=served-name

(``EVALTUNE_NLI_MODEL`` takes an endpoint too; it is then asked the NLI question in words.)
Unset, each scorer returns no value for any item, with ``skipped`` and the reason in its details,
and its aggregate logs one warning and reports no metric.

A local judge reads its verdict from log-likelihoods, never from free text: the probability mass
of " Yes" against " No" as the next words after a fixed prompt (the model's chat template is
applied when it has one). An endpoint is asked for one token with log-probs; without log-probs
its one-word answer is read.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

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
JUDGE_ENV = "EVALTUNE_JUDGE_MODEL"

JUDGE_PROMPT_WITH_SOURCE = (
    "You check answers for hallucinations.\n\nSource:\n{source}\n\nQuestion: {prompt}\nAnswer: {output}\n\n"
    "Is every claim in the answer supported by the source? Reply Yes or No.\nReply:"
)
JUDGE_PROMPT_WITHOUT_SOURCE = (
    "You check answers for hallucinations.\n\nQuestion: {prompt}\nAnswer: {output}\n\n"
    "Is the answer factually correct, with nothing made up? Reply Yes or No.\nReply:"
)
RUBRIC_PROMPT = (
    "You grade answers against a rubric.\n\nQuestion: {prompt}\nAnswer: {output}\n\nRubric: {rubric}\n\n"
    "Does the answer meet the rubric? Reply Yes or No.\nReply:"
)
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


def judge_prompt(example: Example) -> str:
    """The fixed prompt the judge answers Yes (faithful) or No: with the source when the item has one."""
    sources = source_texts(example)
    if sources:
        return JUDGE_PROMPT_WITH_SOURCE.format(source="\n".join(sources), prompt=example.prompt, output=example.output)
    return JUDGE_PROMPT_WITHOUT_SOURCE.format(prompt=example.prompt, output=example.output)


@scorer("judge", family="hallucination", higher_is_better=False, needs=("judge",), batched=True,
        aggregate=_skip_aware_mean("judge", JUDGE_ENV))
def judge(examples: Sequence[Example]) -> list[ScoreResult]:
    """Probability that the judge model (EVALTUNE_JUDGE_MODEL) answers "No, not supported": 1 = hallucinated."""
    model = model_from_env(JUDGE_ENV)
    if model is None:
        return [skipped(JUDGE_ENV, "judge") for _ in examples]
    results = []
    for p_yes in yes_probabilities(model, [judge_prompt(e) for e in examples]):
        if p_yes is None:
            reason = "the judge answered neither Yes nor No"
            results.append(ScoreResult(None, {"model": model.describe(), "reason": reason}))
        else:
            results.append(ScoreResult(1.0 - p_yes, {"model": model.describe(), "p_yes": round(p_yes, 6)}))
    return results


def judge_model() -> ModelRef | None:
    """The judge model EVALTUNE_JUDGE_MODEL names (None when unset), shared by ``judge`` and ``llm-rubric``."""
    return model_from_env(JUDGE_ENV)


def rubric_yes_probabilities(model: ModelRef, graded: Sequence[tuple[str, str, str]]) -> list[float | None]:
    """For each (prompt, output, rubric): the judge's P(Yes) that the output meets the rubric, in one batched
    pass (None where an endpoint answered neither Yes nor No)."""
    prompts = [RUBRIC_PROMPT.format(prompt=prompt, output=output, rubric=rubric) for prompt, output, rubric in graded]
    return yes_probabilities(model, prompts)
