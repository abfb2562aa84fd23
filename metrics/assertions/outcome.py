"""What every check shares: an assertion's option with its catalogue default, and a verdict with a reason a
user reads in ``runs show --failures``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from evaltune.metrics.assertions.catalogue import ASSERTION_TYPES
from evaltune.metrics.records import Assertion, AssertionResult, Example

# A check judges many (assertion, output) pairs of its type at once, so that models run in batches.
BatchCheck = Callable[[Sequence[tuple[Assertion, Example]]], list[AssertionResult]]
ItemCheck = Callable[[Assertion, Example], AssertionResult]

QUOTE_CHARS = 60


def option(assertion: Assertion, key: str) -> Any:
    """The assertion's ``key`` as written, else the catalogue's default for its type."""
    if key in assertion.options:
        return assertion.options[key]
    return ASSERTION_TYPES[assertion.type].fields[key].default


def quoted(text: str) -> str:
    """``"text"`` for a reason, cut to a readable length."""
    cut = text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 1] + "…"
    return '"' + cut.replace("\n", " ") + '"'


def quoted_list(texts: Sequence[str]) -> str:
    return ", ".join(quoted(t) for t in texts)


def compared(value: float, threshold: float) -> str:
    """``0.62 < 0.70`` or ``0.85 >= 0.70``, with as many decimals as it takes not to print ``0.70 < 0.70``."""
    digits = 2
    while f"{value:.{digits}f}" == f"{threshold:.{digits}f}" and value != threshold and digits < 6:
        digits += 1
    return f"{value:.{digits}f} {'>=' if value >= threshold else '<'} {threshold:.2f}"


def judged(assertion: Assertion, holds: bool, fact: str, expected: str | None = None,
           measured: float | None = None) -> AssertionResult:
    """The verdict on one output: ``holds`` is what the base type found (a ``not-`` form passes when it does not).

    ``fact`` says what was found ("contains \\"812\\"", "cosine 0.62 < 0.70 with ..."); a failure is explained by
    ``expected`` when given ("expected not to contain ...") and by the fact otherwise.
    """
    passed = holds != assertion.negate
    if passed or expected is None:
        return AssertionResult(passed, fact, measured)
    return AssertionResult(False, f"expected {'not ' if assertion.negate else ''}{expected}", measured)


def skipped(reason: str) -> AssertionResult:
    """An assertion that could not be judged on this output: it counts neither way."""
    return AssertionResult(None, f"skipped: {reason}")


def per_item(check: ItemCheck) -> BatchCheck:
    def batch(pairs: Sequence[tuple[Assertion, Example]]) -> list[AssertionResult]:
        return [check(assertion, example) for assertion, example in pairs]

    return batch
