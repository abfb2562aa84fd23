"""The scorer an assertion of type ``scorer`` names, as the registry identifies it: ``similar(threshold=0.75)``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from evaltune.suggestions import did_you_mean

OWN_KEYS = ("name", "min", "max", "weight", "metric")  # an assertion of type scorer's keys that are not parameters


class ScorerNameError(ValueError):
    """The named scorer or one of its parameters is refused; ``field`` is the assertion's key at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def checked_scorer_id(name: str, params: Mapping[str, Any]) -> str:
    """The registry's id for ``name`` with ``params``, validated; raises ``ScorerNameError``."""
    from evaltune.metrics import registry

    try:
        return registry.scorer_id(name, dict(params))
    except registry.UnknownScorerError:
        hint = did_you_mean(name, registry.scorer_names())
        raise ScorerNameError("name", f"unknown scorer '{name}'{hint}; 'evaltune scorers list' shows them "
                                      "all") from None
    except registry.ScorerParamError as error:
        # A scorer without parameters refuses any key without naming it: every extra key is one.
        field = error.param or next(iter(params), "name")
        hint = did_you_mean(field, OWN_KEYS) if f"no parameter '{field}'" in str(error) else ""
        raise ScorerNameError(field, f"{error}" + (f"; or the assertion's own key{hint}" if hint else "")) from None
