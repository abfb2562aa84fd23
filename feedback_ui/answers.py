"""What an annotator can answer, checked on construction so that nothing malformed reaches the store."""

from __future__ import annotations

import re
from dataclasses import dataclass

CHOICES = ("a", "b", "tie", "both_bad")
CHOICE_LABELS = {"a": "A is better", "b": "B is better", "tie": "Tie", "both_bad": "Both bad"}
MAX_TEXT = 20_000  # characters in a correction, span or comment


def _clean(text: str | None) -> str | None:
    text = (text or "").strip()
    if len(text) > MAX_TEXT:
        raise ValueError(f"keep free text under {MAX_TEXT} characters")
    return text or None


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


@dataclass(frozen=True)
class SingleAnswer:
    """A judgement of one output: Likert 1-5, hallucination with the quoted span, thumbs up/down (optional),
    flags, free text."""

    likert: int
    hallucination: bool
    hallucinated_span: str | None = None
    thumbs: bool | None = None  # None: the annotator gave neither thumbs up nor down
    bias: bool = False
    unsafe: bool = False
    correction: str | None = None
    comment: str | None = None

    def __post_init__(self) -> None:
        if self.likert not in range(1, 6):
            raise ValueError("choose an overall score from 1 to 5")
        if self.thumbs is not None and not isinstance(self.thumbs, bool):
            raise ValueError("thumbs is up (True), down (False) or not given (None)")
        for name in ("hallucinated_span", "correction", "comment"):
            object.__setattr__(self, name, _clean(getattr(self, name)))
        if self.hallucination and not self.hallucinated_span:
            raise ValueError("quote the unsupported part of the output")
        if not self.hallucination:
            object.__setattr__(self, "hallucinated_span", None)

    def check_span(self, output: str) -> None:
        """Raises ``ValueError`` unless the quoted span appears in ``output`` (ignoring case and spacing)."""
        if self.hallucinated_span and _squash(self.hallucinated_span) not in _squash(output):
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
