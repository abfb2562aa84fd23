"""The scorer registry: a scorer is a small function over ``Example`` records, registered by name.

    @scorer("exact_match", family="quality", needs=("reference",))
    def exact_match(example: Example) -> ScoreResult: ...

Scorers that load a model work on a whole batch: register them with ``batched=True`` and
take ``Sequence[Example]``, returning one ``ScoreResult`` per example.

A scorer with parameters is a factory (``factory=True``): its typed keyword parameters are the scorer's
parameters (see ``metrics.scorer_params``) and it returns the item scorer (or the batch scorer). It is called
when a suite loads, to check the values, so it must not load a model. ``presets`` names parameterisations, which
keeps old names working when several scorers fold into one::

    @scorer("rouge", family="quality", needs=("reference",), factory=True,
            presets={"rouge_1": {"variant": "1"}, "rouge_2": {"variant": "2"}, "rouge_l": {"variant": "l"}})
    def rouge(variant: Literal["1", "2", "l"] = "l") -> ItemScorer: ...

A parameterisation is known by its id (``similar(threshold=0.75)``, or ``rouge_l`` for a preset): runs, scores
and metrics carry it, so two parameterisations of one scorer live side by side in one run.

A scorer's run-level metrics come from its ``aggregate``: by default the mean of the values
that are not None, named after the scorer, with a 95% interval. Scorers whose run-level
number is not a mean (a bias gap between groups, a BBQ bias score) pass their own
``aggregate=fn(examples, results) -> list[MetricValue]``. A metric named after the scorer (or ``scorer:part``)
is renamed after the id (``similar(threshold=0.75)``, ``cf_sentiment_gap:gender``).

Installed packages add scorers through entry points in the group ``evaltune.scorers`` (``metrics.plugins``):
each names a module whose import registers scorers with ``@scorer``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from evaltune.metrics import plugins
from evaltune.metrics.assertions.names import RESERVED_NAMES
from evaltune.metrics.records import Example, MetricValue, ScoreResult
from evaltune.metrics.scorer_params import (
    ScorerParam,
    ScorerParamError,
    check_values,
    format_id,
    params_of,
    parse_id,
)
from evaltune.metrics.stats.intervals import mean_with_ci

__all__ = ["Aggregate", "BatchScorer", "ItemScorer", "ScorerParam", "ScorerParamError", "ScorerSpec",
           "UnknownScorerError", "all_scorers", "get_scorer", "mean_aggregate", "plugin_problems", "scorer",
           "scorer_id", "scorer_names"]

Family = Literal["hallucination", "bias", "quality", "privacy"]
Need = Literal["reference", "context", "samples", "group", "logprobs", "judge", "abstention"]

ItemScorer = Callable[[Example], ScoreResult]
BatchScorer = Callable[[Sequence[Example]], list[ScoreResult]]
Aggregate = Callable[[Sequence[Example], Sequence[ScoreResult]], list[MetricValue]]


@dataclass(frozen=True)
class ScorerSpec:
    """A scorer ready to score: ``name`` is its id, ``score_batch`` is bound to ``values`` (every parameter's
    value), ``base`` is the registered name (``rouge`` for ``rouge_l``)."""

    name: str
    family: Family
    higher_is_better: bool
    needs: tuple[Need, ...]
    description: str
    score_batch: BatchScorer
    aggregate: Aggregate
    params: tuple[ScorerParam, ...] = ()
    origin: str = plugins.BUILT_IN
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    base: str = ""
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"


@dataclass(frozen=True)
class _Registered:
    """A registered scorer before parameters are bound: ``make(**values)`` gives its batch scorer."""

    name: str
    family: Family
    higher_is_better: bool
    needs: tuple[Need, ...]
    description: str
    make: Callable[..., BatchScorer]
    aggregate: Aggregate | None
    params: tuple[ScorerParam, ...]
    origin: str
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)  # preset name -> every parameter's value


# The store keeps scorer and metric names of up to 100 characters; a metric may add ":attribute" to an id.
MAX_ID_CHARS = 80
_REGISTRY: dict[str, _Registered] = {}
_PRESETS: dict[str, str] = {}  # preset name -> the scorer it parameterises
_BOUND: dict[str, ScorerSpec] = {}  # id or name as asked -> spec


class UnknownScorerError(KeyError):
    def __init__(self, name: str):
        super().__init__(f"unknown scorer '{name}'; known scorers: {', '.join(sorted([*_REGISTRY, *_PRESETS]))}")
        self.name = name

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
    factory: bool = False,
    presets: Mapping[str, Mapping[str, Any]] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a scorer (or, with ``factory=True``, a scorer factory) under ``name``; see the module docstring.
    The function's docstring's first line becomes its description. A name (or preset name) already taken raises
    ``ValueError``."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        for taken in (name, *(presets or {})):
            _check_free(taken)
        doc = (fn.__doc__ or "").strip().splitlines()

        def make(**values: Any) -> BatchScorer:
            made = fn(**values) if factory else fn
            if not callable(made):
                raise TypeError(f"scorer factory '{name}' returned {type(made).__name__}, not a scorer function")
            return made if batched else _per_item(made)

        params = params_of(fn) if factory else ()
        preset_values = {preset: check_values(name, params, values) for preset, values in (presets or {}).items()}
        registered = _Registered(name, family, higher_is_better, needs, doc[0] if doc else "", make, aggregate,
                                 params, _origin_of(fn), preset_values)
        _REGISTRY[name] = registered
        _PRESETS.update(dict.fromkeys(registered.presets, name))
        return fn

    return register


def _check_free(name: str) -> None:
    if name in RESERVED_NAMES:  # the names a run's assertion results are stored under
        raise ValueError(f"the scorer name '{name}' is reserved for a suite's assertions; choose another name")
    owner = _REGISTRY.get(_PRESETS.get(name, name))
    if owner is not None:
        what = "scorer" if name in _REGISTRY else f"preset of scorer '{owner.name}'"
        raise ValueError(f"the scorer name '{name}' is already taken (a {what}, {owner.origin}); choose another name")


def _origin_of(fn: Callable[..., Any]) -> str:
    """Built in (evaltune's own modules, even when a plugin's import pulls them in), the plugin being loaded, or
    the module of code that registered a scorer itself (a test, a notebook)."""
    module = getattr(fn, "__module__", "") or ""
    if module.startswith("evaltune."):
        return plugins.BUILT_IN
    return plugins.loading_origin() or f"module {module}"


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


def scorer_id(name: str, params: Mapping[str, Any] | None = None) -> str:
    """The canonical id of scorer ``name`` (a name, a preset or an id) with ``params`` over its own: checked, so
    that a suite fails when it loads. Raises ``UnknownScorerError`` or ``ScorerParamError`` (the fix in its
    message, the parameter in ``.param``)."""
    return _resolve(name, params)[2]


def get_scorer(id_or_name: str) -> ScorerSpec:
    """The scorer an id or name stands for, bound to its parameters and named by its canonical id."""
    _load_builtin_scorers()
    found = _BOUND.get(id_or_name)
    if found is not None:
        return found
    registered, values, canonical = _resolve(id_or_name)
    spec = _BOUND.get(canonical) or ScorerSpec(
        canonical, registered.family, registered.higher_is_better, registered.needs, registered.description,
        registered.make(**values), _renamed(registered.aggregate or mean_aggregate(registered.name),
                                            registered.name, canonical),
        registered.params, registered.origin, registered.presets, registered.name, values,
    )
    _BOUND[canonical] = _BOUND[id_or_name] = spec
    return spec


def all_scorers() -> list[ScorerSpec]:
    """Every registered scorer (plugins' too) at its defaults, by family and name; presets are in ``.presets``."""
    _load_plugins()
    return sorted((get_scorer(name) for name in _REGISTRY), key=lambda spec: (spec.family, spec.base))


def scorer_names() -> list[str]:
    """Every name a suite may write: the scorers and their presets, sorted."""
    _load_plugins()
    return sorted([*_REGISTRY, *_PRESETS])


def plugin_problems() -> list[str]:
    """One line per installed scorer plugin that failed to load (the others are registered)."""
    _load_plugins()
    return list(_PLUGIN_PROBLEMS)


def _resolve(text: str, params: Mapping[str, Any] | None = None) -> tuple[_Registered, dict[str, Any], str]:
    """(the registered scorer, every parameter's value, the canonical id) for a name, preset or id."""
    name, values = parse_id(text) if "(" in text else (text.strip(), {})
    values.update(params or {})
    registered = _lookup(name)
    full = check_values(registered.name, registered.params, values, registered.presets.get(name))
    if registered.params:
        _call_factory(registered, full)
    preset = next((p for p, preset_values in registered.presets.items() if preset_values == full), None)
    canonical = preset or format_id(registered.name, registered.params, full)
    if len(canonical) > MAX_ID_CHARS:
        longest = max(registered.params, key=lambda p: len(str(full[p.name])))
        raise ScorerParamError(f"the id {canonical[:40]}... is {len(canonical)} characters, over the {MAX_ID_CHARS} "
                               f"a stored score's name may take; shorten '{longest.name}'", longest.name)
    return registered, full, canonical


def _lookup(name: str) -> _Registered:
    _load_builtin_scorers()
    if name not in _REGISTRY and name not in _PRESETS:
        _load_plugins()  # only for a name the built-ins lack: a plain name stays cheap
    registered = _REGISTRY.get(_PRESETS.get(name, name))
    if registered is None:
        raise UnknownScorerError(name)
    return registered


def _call_factory(registered: _Registered, values: dict[str, Any]) -> None:
    """Call the factory once to let it refuse values its types allow (a threshold outside 0-1)."""
    try:
        registered.make(**values)
    except ValueError as error:
        named = [p.name for p in registered.params if p.name in str(error)]
        raise ScorerParamError(f"scorer '{registered.name}': {error}", named[0] if named else None) from None


def _renamed(aggregate: Aggregate, base: str, canonical: str) -> Aggregate:
    """``aggregate`` with metrics named after ``base`` (or ``base:part``) named after the id instead."""
    if base == canonical:
        return aggregate

    def rename(metric: MetricValue) -> MetricValue:
        if metric.name == base:
            return replace(metric, name=canonical)
        if metric.name.startswith(base + ":"):
            return replace(metric, name=canonical + metric.name[len(base):])
        return metric

    def renamed(examples: Sequence[Example], results: Sequence[ScoreResult]) -> list[MetricValue]:
        return [rename(metric) for metric in aggregate(examples, results)]

    return renamed


_SCORER_MODULES_LOADED = False
_PLUGINS_LOADED = False
_PLUGIN_PROBLEMS: list[str] = []


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


def _load_plugins() -> None:
    """Import the ``evaltune.scorers`` entry points once, after the built-ins (which keep their names). A plugin
    that fails is one line in ``plugin_problems()``, and whatever it registered before failing is taken back."""
    global _PLUGINS_LOADED
    _load_builtin_scorers()
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    for point in plugins.plugin_entry_points(plugins.SCORERS_GROUP):
        before, before_presets = set(_REGISTRY), set(_PRESETS)
        _, problem = plugins.load_plugin(point)
        if problem is not None:
            for name in set(_REGISTRY) - before:
                del _REGISTRY[name]
            for name in set(_PRESETS) - before_presets:
                del _PRESETS[name]
            _PLUGIN_PROBLEMS.append(problem)
