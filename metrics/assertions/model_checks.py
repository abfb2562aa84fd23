"""Checks that ask a model: ``scorer`` (any registered scorer, one batch per scorer id) and ``llm-rubric`` (the
judge model of EVALTUNE_JUDGE_MODEL, every rubric question in one batched pass)."""

from __future__ import annotations

from collections.abc import Sequence

from evaltune.metrics.assertions.outcome import compared, judged, option, quoted, skipped
from evaltune.metrics.assertions.scorer_ids import checked_scorer_id
from evaltune.metrics.records import Assertion, AssertionResult, Example

BOUNDS = ("name", "min", "max")  # the assertion's own keys; the rest are the scorer's parameters


def scorer_of(assertion: Assertion) -> str:
    """The id of the scorer an assertion of type ``scorer`` names, with its parameters: ``similar(threshold=0.75)``."""
    params = {k: v for k, v in assertion.options.items() if k not in BOUNDS}
    return checked_scorer_id(assertion.options["name"], params)


def scorer(pairs: Sequence[tuple[Assertion, Example]]) -> list[AssertionResult]:
    from evaltune.metrics.registry import get_scorer

    batches: dict[str, list[int]] = {}
    for k, (assertion, _) in enumerate(pairs):
        batches.setdefault(scorer_of(assertion), []).append(k)
    results: dict[int, AssertionResult] = {}
    for scorer_id, chosen in batches.items():
        # An output named by two assertions on the same scorer is scored once.
        outputs = list({id(pairs[k][1]): pairs[k][1] for k in chosen}.values())
        scores = dict(zip((id(e) for e in outputs), get_scorer(scorer_id).score_batch(outputs), strict=True))
        for k in chosen:
            assertion, example = pairs[k]
            score = scores[id(example)]
            if score.value is None:
                why = score.details.get("reason", "not applicable to this item")
                results[k] = skipped(f"{scorer_id} gave no value ({str(why).removeprefix('skipped: ')})")
            else:
                results[k] = _within(assertion, scorer_id, float(score.value))
    return [results[k] for k in range(len(pairs))]


def _within(assertion: Assertion, scorer_id: str, value: float) -> AssertionResult:
    low, high = assertion.options.get("min"), assertion.options.get("max")
    if low is not None and value < low:
        return judged(assertion, False, f"{scorer_id} {value:.3g} < min {low:g}", measured=value)
    if high is not None and value > high:
        return judged(assertion, False, f"{scorer_id} {value:.3g} > max {high:g}", measured=value)
    bounds = " and ".join(part for part in (f"min {low:g}" if low is not None else "",
                                            f"max {high:g}" if high is not None else "") if part)
    return judged(assertion, True, f"{scorer_id} {value:.3g} within {bounds}", measured=value)


def llm_rubric(pairs: Sequence[tuple[Assertion, Example]]) -> list[AssertionResult]:
    from evaltune.metrics.scorers.judges import JUDGE_ENV, how_to_enable, judge_model, rubric_yes_probabilities

    model = judge_model()
    if model is None:
        return [skipped(how_to_enable(JUDGE_ENV, "llm-rubric")) for _ in pairs]
    graded = [(example.prompt, example.output, assertion.value) for assertion, example in pairs]
    results = []
    for (assertion, _), p_yes in zip(pairs, rubric_yes_probabilities(model, graded), strict=True):
        if p_yes is None:
            results.append(skipped(f"the judge {model.describe()} answered neither Yes nor No"))
            continue
        threshold = option(assertion, "threshold")
        holds = p_yes >= threshold
        fact = f"judge P(yes) {compared(p_yes, threshold)} for {quoted(assertion.value)}"
        results.append(judged(assertion, holds, fact, measured=p_yes))
    return results
