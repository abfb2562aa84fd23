"""Closeness to an expected text: ``similar`` (MiniLM cosine, all pairs embedded in one call), ``rouge-n`` and
``bleu`` (the registered ``rouge_1``/``rouge_2`` and ``bleu`` scorers, run once over every pair, with the
assertion's texts as the references)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from evaltune.metrics.assertions.outcome import compared, judged, option, quoted
from evaltune.metrics.records import Assertion, AssertionResult, Example


def expected_texts(assertion: Assertion) -> tuple[str, ...]:
    """The assertion's ``value`` as a tuple: one text or a list of acceptable ones."""
    return (assertion.value,) if isinstance(assertion.value, str) else tuple(assertion.value)


def similar(pairs: Sequence[tuple[Assertion, Example]]) -> list[AssertionResult]:
    from evaltune.metrics.model_loaders.embeddings import embed  # loads the model on first use

    texts = [text for assertion, example in pairs for text in (example.output, *expected_texts(assertion))]
    vectors = embed(texts)  # each distinct text once, batched by length
    results, row = [], 0
    for assertion, _example in pairs:
        wanted = expected_texts(assertion)
        cosines = vectors[row + 1 : row + 1 + len(wanted)] @ vectors[row]
        row += 1 + len(wanted)
        best = int(cosines.argmax())
        cosine, threshold = float(cosines[best]), option(assertion, "threshold")
        holds = cosine >= threshold
        fact = f"cosine {compared(cosine, threshold)} with {quoted(wanted[best])}"
        results.append(judged(assertion, holds, fact, measured=cosine))
    return results


def _overlap(pairs: Sequence[tuple[Assertion, Example]], scorer_of: Callable[[Assertion], str], scale: float,
             label: Callable[[Assertion], str]) -> list[AssertionResult]:
    """Score every pair with its registered overlap scorer (one batch per scorer), its expected texts as the
    references; ``scale`` turns the scorer's value into 0-1."""
    from evaltune.metrics.registry import get_scorer

    batches: dict[str, list[int]] = {}
    for k, (assertion, _) in enumerate(pairs):
        batches.setdefault(scorer_of(assertion), []).append(k)
    results: dict[int, AssertionResult] = {}
    for scorer_name, chosen in batches.items():
        examples = [dataclasses.replace(pairs[k][1], references=expected_texts(pairs[k][0])) for k in chosen]
        for k, score in zip(chosen, get_scorer(scorer_name).score_batch(examples), strict=True):
            assertion = pairs[k][0]
            value, threshold = (score.value or 0.0) / scale, option(assertion, "threshold")
            holds = value >= threshold
            reference = str(score.details.get("best_reference", expected_texts(assertion)[0]))
            fact = f"{label(assertion)} {compared(value, threshold)} with {quoted(reference)}"
            results[k] = judged(assertion, holds, fact, measured=value)
    return [results[k] for k in range(len(pairs))]


def rouge_n(pairs: Sequence[tuple[Assertion, Example]]) -> list[AssertionResult]:
    return _overlap(pairs, lambda a: f"rouge_{option(a, 'n')}", 1.0, lambda a: f"ROUGE-{option(a, 'n')}")


def bleu(pairs: Sequence[tuple[Assertion, Example]]) -> list[AssertionResult]:
    return _overlap(pairs, lambda a: "bleu", 100.0, lambda a: "BLEU")  # sacrebleu's 0-100, read as 0-1
