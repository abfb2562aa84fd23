"""The plain records scorers read and return. No model, no database: just values."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Assertion:
    """One check of an item's output, as a suite file writes it: ``{type: contains, value: "812"}``.

    ``type`` is the base type (``contains``); its ``not-`` form sets ``negate``. ``value`` is what the type compares
    with (text, a number, a list of texts; None for types without one, such as ``is-json``). ``options`` holds the
    type's other fields (``threshold``, ``schema``, ``min``, ``max``, ``name`` and a scorer's parameters).
    ``weight`` (0 or more; 0 = reported but never fails the item) and ``metric`` (a name to aggregate under) are
    promptfoo's. Built by ``metrics.assertions.assertion_from_dict``, which checks every field.
    """

    type: str
    negate: bool = False
    value: Any = None
    options: dict[str, Any] = field(default_factory=dict)
    weight: float = 1.0
    metric: str | None = None

    @property
    def label(self) -> str:
        """The type as written: ``not-contains`` for a negated ``contains``."""
        return f"not-{self.type}" if self.negate else self.type

    def to_dict(self) -> dict[str, Any]:
        """The assertion as a suite file writes it (``assertion_from_dict`` reads it back unchanged)."""
        data: dict[str, Any] = {"type": self.label}
        if self.value is not None:
            data["value"] = self.value
        data.update(self.options)
        if self.weight != 1.0:
            data["weight"] = self.weight
        if self.metric is not None:
            data["metric"] = self.metric
        return data


@dataclass(frozen=True)
class AssertionResult:
    """One assertion's verdict on one output. ``passed`` None means skipped (an ``llm-rubric`` with no judge
    model); ``reason`` says why it passed, failed or was skipped in words a user reads in ``runs show --failures``;
    ``measured`` is the number that was compared, when there is one (a cosine, a word count, milliseconds);
    ``details`` what else the check wants kept with the verdict (the judge, and how it read its score)."""

    passed: bool | None
    reason: str
    measured: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Example:
    """One output to score, with what the item says about it.

    ``choice_logprobs`` is set for multiple-choice items (one summed log-probability per
    choice); ``samples`` holds the other sampled outputs of the same item, when there are any.
    ``reference_logprobs`` and ``reference_tokens`` (one per reference: log P(reference | prompt)
    and its token count) are set when a scorer asked for them (perplexity), on the first sample.
    ``assertions`` are the item's own checks (the suite's defaults first); ``latency_ms`` is how long the output
    took to generate (None when unknown).
    """

    item_id: str
    prompt: str
    output: str
    references: tuple[str, ...] = ()
    context: str | None = None
    expect_abstention: bool = False
    choices: tuple[str, ...] = ()
    gold: tuple[int, ...] = ()
    choice_logprobs: tuple[float, ...] = ()
    reference_logprobs: tuple[float, ...] = ()
    reference_tokens: tuple[int, ...] = ()
    samples: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    group: str | None = None
    attribute: str | None = None
    value: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    assertions: tuple[Assertion, ...] = ()
    latency_ms: float | None = None


@dataclass(frozen=True)
class ScoreResult:
    """A scorer's verdict on one example. ``value`` None means "not applicable to this item"."""

    value: float | None
    details: dict[str, Any] = field(default_factory=dict)


NOT_APPLICABLE = ScoreResult(None, {"reason": "not applicable"})


@dataclass(frozen=True)
class MetricValue:
    """One run-level number from a scorer's aggregate, always with its 95% interval and n."""

    name: str
    value: float
    ci_low: float
    ci_high: float
    n: int
    details: dict[str, Any] = field(default_factory=dict)
