"""Checks on the output's text alone: equality, substrings, regular expressions, lengths, edit distance, latency.

Case matters everywhere except in the ``i``-types, and nothing is trimmed, as in promptfoo.
"""

from __future__ import annotations

import re

from evaltune.metrics.assertions.outcome import ItemCheck, judged, option, quoted, quoted_list, skipped
from evaltune.metrics.records import Assertion, AssertionResult, Example


def equals(assertion: Assertion, example: Example) -> AssertionResult:
    holds = example.output == assertion.value
    fact = f"equals {quoted(assertion.value)}" if holds else f"differs from {quoted(assertion.value)}"
    return judged(assertion, holds, fact, f"to equal {quoted(assertion.value)}")


def _contains(fold: bool) -> ItemCheck:
    def check(assertion: Assertion, example: Example) -> AssertionResult:
        output, value = (example.output.casefold(), assertion.value.casefold()) if fold else (example.output,
                                                                                               assertion.value)
        holds = value in output
        fact = f"contains {quoted(assertion.value)}" if holds else f"does not contain {quoted(assertion.value)}"
        return judged(assertion, holds, fact, f"to contain {quoted(assertion.value)}")

    return check


def _found(assertion: Assertion, example: Example, fold: bool) -> list[bool]:
    output = example.output.casefold() if fold else example.output
    return [(text.casefold() if fold else text) in output for text in assertion.value]


def _contains_any(fold: bool) -> ItemCheck:
    def check(assertion: Assertion, example: Example) -> AssertionResult:
        found = [text for text, hit in zip(assertion.value, _found(assertion, example, fold), strict=True) if hit]
        fact = f"contains {quoted(found[0])}" if found else f"contains none of {quoted_list(assertion.value)}"
        return judged(assertion, bool(found), fact, f"to contain any of {quoted_list(assertion.value)}")

    return check


def _contains_all(fold: bool) -> ItemCheck:
    def check(assertion: Assertion, example: Example) -> AssertionResult:
        missing = [text for text, hit in zip(assertion.value, _found(assertion, example, fold), strict=True)
                   if not hit]
        fact = f"contains all of {quoted_list(assertion.value)}" if not missing else f"missing {quoted_list(missing)}"
        expected = f"to contain all of {quoted_list(assertion.value)}"
        if missing:
            expected += f"; missing {quoted_list(missing)}"
        return judged(assertion, not missing, fact, expected)

    return check


def starts_with(assertion: Assertion, example: Example) -> AssertionResult:
    holds = example.output.startswith(assertion.value)
    fact = f"starts with {quoted(assertion.value)}" if holds else f"does not start with {quoted(assertion.value)}"
    return judged(assertion, holds, fact, f"to start with {quoted(assertion.value)}")


def regex(assertion: Assertion, example: Example) -> AssertionResult:
    match = re.search(assertion.value, example.output)  # re caches compiled patterns
    fact = f"/{assertion.value}/ matches {quoted(match.group(0))}" if match else f"no match for /{assertion.value}/"
    return judged(assertion, match is not None, fact, f"to match /{assertion.value}/")


def max_words(assertion: Assertion, example: Example) -> AssertionResult:
    count = len(example.output.split())
    return judged(assertion, count <= assertion.value, f"got {count} words, max {assertion.value}", measured=count)


def min_words(assertion: Assertion, example: Example) -> AssertionResult:
    count = len(example.output.split())
    return judged(assertion, count >= assertion.value, f"got {count} words, min {assertion.value}", measured=count)


def max_chars(assertion: Assertion, example: Example) -> AssertionResult:
    count = len(example.output)
    return judged(assertion, count <= assertion.value, f"got {count} characters, max {assertion.value}",
                  measured=count)


def levenshtein(assertion: Assertion, example: Example) -> AssertionResult:
    from rapidfuzz.distance import Levenshtein

    threshold = option(assertion, "threshold")
    distance = Levenshtein.distance(example.output, assertion.value)
    holds = distance <= threshold
    fact = f"edit distance {distance} {'<=' if holds else '>'} {threshold} from {quoted(assertion.value)}"
    return judged(assertion, holds, fact, measured=distance)


def latency(assertion: Assertion, example: Example) -> AssertionResult:
    if example.latency_ms is None:
        return skipped("this output's generation time was not recorded")
    limit = option(assertion, "threshold")
    holds = example.latency_ms <= limit
    return judged(assertion, holds, f"took {example.latency_ms:.0f} ms, max {limit:g} ms", measured=example.latency_ms)


ITEM_CHECKS: dict[str, ItemCheck] = {
    "equals": equals,
    "contains": _contains(fold=False),
    "icontains": _contains(fold=True),
    "contains-any": _contains_any(fold=False),
    "icontains-any": _contains_any(fold=True),
    "contains-all": _contains_all(fold=False),
    "icontains-all": _contains_all(fold=True),
    "starts-with": starts_with,
    "regex": regex,
    "max-words": max_words,
    "min-words": min_words,
    "max-chars": max_chars,
    "levenshtein": levenshtein,
    "latency": latency,
}
