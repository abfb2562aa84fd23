"""What an annotator can answer, checked on construction so that nothing malformed reaches the store."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

CHOICES = ("a", "b", "tie", "both_bad")
CHOICE_LABELS = {"a": "A is better", "b": "B is better", "tie": "Tie", "both_bad": "Both bad"}
LIKERT_LABELS = {1: "1 very poor", 2: "2 poor", 3: "3 acceptable", 4: "4 good", 5: "5 excellent"}
MAX_TEXT = 20_000  # characters in a correction, span or comment
SPAN_JOINER = " … "  # between the texts of several marked spans in ``hallucinated_span``
Span = tuple[int, int]  # [start, end) character offsets into the output the annotator saw


def _clean(text: str | None) -> str | None:
    text = (text or "").strip()
    if len(text) > MAX_TEXT:
        raise ValueError(f"keep free text under {MAX_TEXT} characters")
    return text or None


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def spans_shape(spans: Sequence[Sequence[int]]) -> tuple[Span, ...]:
    """``spans`` as sorted ``(start, end)`` pairs; raises ``ValueError`` for any that is not a non-empty range
    or that overlaps another."""
    pairs: list[Span] = []
    for span in spans:
        if len(span) != 2 or not all(isinstance(n, int) and not isinstance(n, bool) for n in span):
            raise ValueError(f"a span is a [start, end] pair of character offsets, not {list(span)!r}")
        start, end = span
        if not 0 <= start < end:
            raise ValueError(f"span [{start}, {end}] is empty or negative: mark at least one character")
        pairs.append((start, end))
    pairs.sort()
    for (start, end), (next_start, next_end) in pairwise(pairs):
        if next_start < end:
            raise ValueError(f"spans [{start}, {end}] and [{next_start}, {next_end}] overlap: mark each part once")
    return tuple(pairs)


def check_spans(output: str, spans: Sequence[Span]) -> None:
    """Raises ``ValueError`` unless every span lies inside ``output`` and holds more than whitespace."""
    for start, end in spans:
        if end > len(output):
            raise ValueError(f"span [{start}, {end}] runs past the end of the output ({len(output)} characters): "
                             "mark text inside the output")
        if not output[start:end].strip():
            raise ValueError(f"span [{start}, {end}] is only whitespace: mark the words that are unsupported")


def quote(output: str, spans: Sequence[Span]) -> str:
    """The marked texts of ``output``, joined as ``hallucinated_span`` stores them."""
    return SPAN_JOINER.join(output[start:end].strip() for start, end in spans)


def spans_from_utf16(output: str, spans: Sequence[Sequence[int]]) -> list[Span]:
    """Offsets counted as a browser counts them (UTF-16 code units) turned into Python's (characters).

    A character outside the Basic Multilingual Plane (most emoji) is two units in JavaScript and one here; an
    offset that falls between those two units is refused."""
    units = output.encode("utf-16-le")

    def convert(offset: int) -> int:
        if not 0 <= offset * 2 <= len(units):
            raise ValueError(f"offset {offset} is outside the output ({len(units) // 2} UTF-16 units)")
        try:
            return len(units[: offset * 2].decode("utf-16-le"))
        except UnicodeDecodeError:
            raise ValueError(f"offset {offset} splits a character in two: mark whole characters") from None

    return [(convert(start), convert(end)) for start, end in spans_shape(spans)]


@dataclass(frozen=True)
class SingleAnswer:
    """A judgement of one output: Likert 1-5, hallucination with the quoted span (and, when marked in the output,
    its character offsets ``spans``), thumbs up/down (optional), flags, free text."""

    likert: int
    hallucination: bool
    hallucinated_span: str | None = None
    thumbs: bool | None = None  # None: the annotator gave neither thumbs up nor down
    bias: bool = False
    unsafe: bool = False
    correction: str | None = None
    comment: str | None = None
    spans: tuple[Span, ...] | None = None  # None: the span was quoted as text, not marked in the output

    def __post_init__(self) -> None:
        if self.likert not in range(1, 6):
            raise ValueError("choose an overall score from 1 to 5")
        if self.thumbs is not None and not isinstance(self.thumbs, bool):
            raise ValueError("thumbs is up (True), down (False) or not given (None)")
        for name in ("hallucinated_span", "correction", "comment"):
            object.__setattr__(self, name, _clean(getattr(self, name)))
        if self.spans is not None:
            object.__setattr__(self, "spans", spans_shape(self.spans) or None)
        if self.hallucination and not self.hallucinated_span:
            raise ValueError("quote the unsupported part of the output (or mark it in the output)")
        if not self.hallucination:
            object.__setattr__(self, "hallucinated_span", None)
            object.__setattr__(self, "spans", None)

    @classmethod
    def marked(cls, output: str, likert: int, spans: Sequence[Span], *, thumbs: bool | None = None,
               bias: bool = False, unsafe: bool = False, correction: str | None = None,
               comment: str | None = None) -> SingleAnswer:
        """An answer whose unsupported parts were marked in ``output``: hallucination is yes exactly when a span
        is marked, and the quoted text is taken from the output."""
        shaped = spans_shape(spans)
        check_spans(output, shaped)
        return cls(likert=likert, hallucination=bool(shaped), hallucinated_span=quote(output, shaped),
                   thumbs=thumbs, bias=bias, unsafe=unsafe, correction=correction, comment=comment,
                   spans=shaped or None)

    def check_span(self, output: str) -> None:
        """Raises ``ValueError`` unless the marked spans lie in ``output`` and hold the quoted text, or (quoted
        only) the quoted span appears in ``output`` (ignoring case and spacing)."""
        if self.spans:
            check_spans(output, self.spans)
            if self.hallucinated_span != _clean(quote(output, self.spans)):
                raise ValueError("the marked spans do not hold the quoted text: the output changed since it was "
                                 "shown; reload the page and mark the spans again")
        elif self.hallucinated_span and _squash(self.hallucinated_span) not in _squash(output):
            raise ValueError("the quoted span is not in the output: copy it exactly")


@dataclass(frozen=True)
class PairAnswer:
    """A blind A/B judgement as the annotator saw the sides: a, b, tie or both_bad."""

    choice: str
    comment: str | None = None

    def __post_init__(self) -> None:
        if self.choice not in CHOICES:
            raise ValueError(f"choose one of: {', '.join(CHOICE_LABELS.values())}")
        object.__setattr__(self, "comment", _clean(self.comment))


def _flag(values: Mapping[str, Any], name: str) -> bool:
    value = values.get(name, False)
    if not isinstance(value, bool):
        raise ValueError(f"{name} is true or false, not {value!r}")
    return value


def _text(values: Mapping[str, Any], name: str) -> str | None:
    value = values.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} is text, not {value!r}")
    return value


def answer_from_form(values: Mapping[str, Any], output: str, pairwise: bool) -> SingleAnswer | PairAnswer:
    """The answer the Rate page's form sent (a JSON object from the browser), checked field by field.

    ``spans`` arrive as the browser counts offsets (UTF-16 units) into ``output``, the text it was shown."""
    if pairwise:
        choice = values.get("choice")
        return PairAnswer(choice=choice if isinstance(choice, str) else "", comment=_text(values, "comment"))
    likert = values.get("likert")
    if not isinstance(likert, int) or isinstance(likert, bool):
        raise ValueError("choose an overall score from 1 to 5")
    raw_spans = values.get("spans") or []
    if not isinstance(raw_spans, list) or not all(isinstance(span, list) for span in raw_spans):
        raise ValueError("spans are a list of [start, end] offsets")
    thumbs = values.get("thumbs")
    if thumbs is not None and not isinstance(thumbs, bool):
        raise ValueError("thumbs is up (true), down (false) or not given (null)")
    return SingleAnswer.marked(output, likert, spans_from_utf16(output, raw_spans), thumbs=thumbs,
                               bias=_flag(values, "bias"), unsafe=_flag(values, "unsafe"),
                               correction=_text(values, "correction"), comment=_text(values, "comment"))
