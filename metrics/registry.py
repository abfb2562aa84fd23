"""The scorer registry: a scorer is a small function over ``Example`` records, registered by name.

    @scorer("exact_match", family="quality", needs=("reference",))
    def exact_match(example: Example) -> ScoreResult: ...

Scorers that load a model work on a whole batch: register them with ``batched=True`` and
take ``Sequence[Example]``, returning one ``ScoreResult`` per example.

A scorer's run-level metrics come from its ``aggregate``: by default the mean of the values
that are not None, named after the scorer, with a 95% interval. Scorers whose run-level
number is not a mean (a bias gap between groups, a BBQ bias score) pass their own
``aggregate=fn(examples, results) -> list[MetricValue]``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from evaltune.metrics.records import Example, MetricValue, ScoreResult
from evaltune.metrics.stats.intervals import mean_with_ci

Family = Literal["hallucination", "bias", "quality"]
Need = Literal["reference", "context", "samples", "group", "logprobs", "judge", "abstention"]

ItemScorer = Callable[[Example], ScoreResult]
BatchScorer = Callable[[Sequence[Example]], list[ScoreResult]]
Aggregate = Callable[[Sequence[Example], Sequence[ScoreResult]], list[MetricValue]]


@dataclass(frozen=True)
class ScorerSpec:
    name: str
    family: Family
    higher_is_better: bool
    needs: tuple[Need, ...]
    description: str
    score_batch: BatchScorer
    aggregate: Aggregate

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"


_REGISTRY: dict[str, ScorerSpec] = {}


class UnknownScorerError(KeyError):
    def __init__(self, name: str):
        known = ", ".join(sorted(_REGISTRY))
        super().__init__(f"unknown scorer '{name}'; known scorers: {known}")

    def __str__(self) -> str:
        return str(self.args[0])


def scorer(
    name: str,
    *,
    family: Family,
    higher_is_better: bool = True,
    needs: tuple[Need, ...] = (),
    batched: bool = False,
    aggregate: Aggregate | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a scorer under ``name``. The function's docstring becomes its description."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY:
            raise ValueError(f"scorer '{name}' is registered twice")
        batch_fn: BatchScorer = fn if batched else _per_item(fn)
        doc = (fn.__doc__ or "").strip().splitlines()
        _REGISTRY[name] = ScorerSpec(name, family, higher_is_better, needs, doc[0] if doc else "", batch_fn,
                                     aggregate or mean_aggregate(name))
        return fn

    return register


def _per_item(fn: ItemScorer) -> BatchScorer:
    def score_batch(examples: Sequence[Example]) -> list[ScoreResult]:
        return [fn(example) for example in examples]

    return score_batch


def mean_aggregate(name: str) -> Aggregate:
    """The default aggregate: one metric ``name``, the mean of the non-None values with its 95% interval."""

    def aggregate(_examples: Sequence[Example], results: Sequence[ScoreResult]) -> list[MetricValue]:
        values = [r.value for r in results if r.value is not None]
        if not values:
            return []
        estimate = mean_with_ci(values)
        return [MetricValue(name, estimate.value, estimate.ci_low, estimate.ci_high, estimate.n)]

    return aggregate


def get_scorer(name: str) -> ScorerSpec:
    _load_builtin_scorers()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownScorerError(name) from None


def all_scorers() -> list[ScorerSpec]:
    _load_builtin_scorers()
    return sorted(_REGISTRY.values(), key=lambda spec: (spec.family, spec.name))


_SCORER_MODULES_LOADED = False


def _load_builtin_scorers() -> None:
    """Import every module of ``evaltune.metrics.scorers`` once, which runs their ``@scorer`` decorators.

    Done lazily so that ``import evaltune.metrics.registry`` stays cheap and free of import cycles, and by
    discovery so that adding a scorer touches one file. Modules that load models must do so
    inside their scorers, not at import.
    """
    global _SCORER_MODULES_LOADED
    if _SCORER_MODULES_LOADED:
        return
    _SCORER_MODULES_LOADED = True
    import importlib
    import pkgutil

    from evaltune.metrics import scorers

    for module in pkgutil.iter_modules(scorers.__path__):
        importlib.import_module(f"evaltune.metrics.scorers.{module.name}")
