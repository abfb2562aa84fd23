"""The ``scorers:`` list of a suite file, each entry checked when the suite loads.

    scorers: [answer_match, rouge_2, "similar(threshold=0.7)", {name: similar, threshold: 0.75}]

An entry is a scorer's name (or a preset's, such as ``rouge_2``), an id text, or a mapping of ``name`` and the
scorer's parameters. Each becomes its canonical id (``similar(threshold=0.75)``); two entries that are the same
scorer with the same parameters are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from evaltune.harness.loaders.checks import describe
from evaltune.harness.suite import SuiteError
from evaltune.suggestions import did_you_mean

EXAMPLE = "{name: similar, threshold: 0.75}"


def scorers_from_yaml(value: Any, source: str) -> tuple[str, ...]:
    """The ids of the scorers a suite's ``scorers:`` names, checked against the registry; raises ``SuiteError``
    with the field ``scorers`` (or ``scorers[2].threshold``, counting from 0) and the fix."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise SuiteError(source, f"must be a list of scorer names or mappings such as [{EXAMPLE}], "
                                 f"not {describe(value)}", field="scorers")
    ids: dict[str, int] = {}
    for position, entry in enumerate(value):
        canonical = _entry_id(entry, position, source)
        if canonical in ids:
            raise SuiteError(source, f"entries {ids[canonical]} and {position} (counting from 0) are the same "
                                     f"scorer, {canonical}; list each once", field="scorers")
        ids[canonical] = position
    return tuple(ids)


def _entry_id(entry: Any, position: int, source: str) -> str:
    """One entry's canonical id."""
    from evaltune.metrics.registry import ScorerParamError, UnknownScorerError, scorer_id, scorer_names

    field = f"scorers[{position}]"
    if isinstance(entry, Mapping):
        name, params = entry.get("name"), {k: v for k, v in entry.items() if k != "name"}
        if not isinstance(name, str) or not name.strip():
            raise SuiteError(source, f"needs 'name' (a scorer's name), as in {EXAMPLE}, not {describe(name)}",
                             field=f"{field}.name")
    elif isinstance(entry, str) and entry.strip():
        name, params = entry, {}
    else:
        raise SuiteError(source, f"must be a scorer name or a mapping such as {EXAMPLE}, not {describe(entry)}",
                         field=field)
    try:
        return scorer_id(name, params)
    except UnknownScorerError as error:
        hint = did_you_mean(error.name, scorer_names())
        raise SuiteError(source, f"unknown scorer '{error.name}'{hint}; 'evaltune scorers list' shows them all",
                         field="scorers") from None
    except ScorerParamError as error:
        where = f"{field}.{error.param}" if error.param else field
        raise SuiteError(source, f"{error}; 'evaltune scorers list' shows each scorer's parameters",
                         field=where) from None
