"""Reference-based quality scorers: exact match, answer match, token F1, multiple-choice accuracy.

ROUGE-1/2/L live with the other n-gram overlap scorers in ``overlap.py``.
"""

from __future__ import annotations

from collections import Counter

from evaltune.metrics.records import NOT_APPLICABLE, Example, ScoreResult
from evaltune.metrics.registry import scorer
from evaltune.metrics.text import contains_phrase, normalize, tokens


@scorer("exact_match", family="quality", needs=("reference",))
def exact_match(example: Example) -> ScoreResult:
    """1 when the normalised output equals a reference or alias (accents, case, punctuation folded)."""
    if not example.references:
        return NOT_APPLICABLE
    output = normalize(example.output)
    for reference in example.references:
        if output == normalize(reference):
            return ScoreResult(1.0, {"matched": reference})
    return ScoreResult(0.0)


@scorer("answer_match", family="quality", needs=("reference",))
def answer_match(example: Example) -> ScoreResult:
    """1 when a reference or alias appears in the output as whole words (a chatty answer still counts)."""
    if not example.references:
        return NOT_APPLICABLE
    for reference in example.references:
        if contains_phrase(example.output, reference):
            return ScoreResult(1.0, {"matched": reference})
    return ScoreResult(0.0)


def _f1(prediction: list[str], reference: list[str]) -> float:
    common = Counter(prediction) & Counter(reference)
    overlap = sum(common.values())
    if not prediction or not reference:
        return float(prediction == reference)
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(prediction), overlap / len(reference)
    return 2 * precision * recall / (precision + recall)


@scorer("token_f1", family="quality", needs=("reference",))
def token_f1(example: Example) -> ScoreResult:
    """SQuAD-style token F1 against the best-matching reference."""
    if not example.references:
        return NOT_APPLICABLE
    predicted = tokens(example.output)
    best = max(example.references, key=lambda ref: _f1(predicted, tokens(ref)))
    return ScoreResult(_f1(predicted, tokens(best)), {"best_reference": best})


@scorer("choice_accuracy", family="quality", needs=("logprobs",))
def choice_accuracy(example: Example) -> ScoreResult:
    """Multiple choice: 1 when the choice with the highest log-likelihood is a correct one."""
    if not example.choice_logprobs or not example.gold:
        return NOT_APPLICABLE
    best = max(range(len(example.choice_logprobs)), key=example.choice_logprobs.__getitem__)
    return ScoreResult(float(best in example.gold), {"picked": best})


@scorer("choice_accuracy_norm", family="quality", needs=("logprobs",))
def choice_accuracy_norm(example: Example) -> ScoreResult:
    """Multiple choice, length-normalised: 1 when the choice with the highest log-likelihood per character is a
    correct one (lm-evaluation-harness's ``acc_norm``: a long choice is not penalised for its many tokens)."""
    if not example.choice_logprobs or not example.gold or len(example.choice_logprobs) != len(example.choices):
        return NOT_APPLICABLE
    # lm-eval divides by the choice's length in characters, without the delimiter before it; an empty choice
    # counts as one character here (lm-eval would divide by zero).
    per_char = [lp / max(len(choice), 1) for lp, choice in zip(example.choice_logprobs, example.choices, strict=True)]
    best = max(range(len(per_char)), key=per_char.__getitem__)
    return ScoreResult(float(best in example.gold), {"picked": best})
