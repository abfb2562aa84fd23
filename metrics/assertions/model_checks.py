"""Checks that ask a model: ``scorer`` (any registered scorer, one batch per scorer id) and ``llm-rubric`` (the
judge the harness hands over through ``metrics.judging``, every rubric question in one batched pass)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

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
    """Each output graded by the judge the harness set (``metrics.judging``), G-Eval style on the assertion's
    scale, every rubric question in one batch; passes when the score scaled to 0-1 reaches the threshold."""
    from evaltune.metrics.judging import RubricRequest, current_judge, no_judge_reason

    judge = current_judge()
    if judge is None:
        return [skipped(no_judge_reason("llm-rubric")) for _ in pairs]
    requests = [RubricRequest(example.prompt, example.output, str(assertion.value), int(option(assertion, "scale")))
                for assertion, example in pairs]
    results = []
    for (assertion, _), request, graded in zip(pairs, requests, judge.rubric(requests), strict=True):
        details = {"judge": judge.describe(), "method": graded.method, "judge_score": graded.score,
                   "scale": request.scale, "judge_reason": graded.reason}
        if graded.normalized is None:
            why = f"the judge {judge.describe()} gave no score from 1 to {request.scale}"
            results.append(replace(skipped(why), details=details))
            continue
        threshold = option(assertion, "threshold")
        read = "weighted by its probabilities" if graded.method == "logprobs" else "read from its reply"
        fact = (f"judge score {graded.score:.2f} of {request.scale} ({read}), scaled "
                f"{compared(graded.normalized, threshold)} for {quoted(str(assertion.value))}")
        verdict = judged(assertion, graded.normalized >= threshold, fact, measured=graded.normalized)
        results.append(replace(verdict, details=details))
    return results
