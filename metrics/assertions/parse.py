"""One assertion as a suite file writes it, checked completely when the suite loads: ``assertion_from_dict``.

Every refusal is an ``AssertionSpecError`` naming the field and saying what to write instead; the loader adds
the file and the item.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache, lru_cache
from typing import Any

from evaltune.metrics.assertions.catalogue import (
    ASSERTION_TYPES,
    PROMPTFOO_INSTEAD,
    AssertionField,
    AssertionType,
    assertion_labels,
)
from evaltune.metrics.records import Assertion
from evaltune.suggestions import did_you_mean


class AssertionSpecError(ValueError):
    """A suite's assertion that cannot work: ``field`` is the key at fault ("type", "value", "schema", ...) and
    ``message`` (also ``str(error)``) says what to write instead."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def assertion_from_dict(data: Any) -> Assertion:
    """The assertion ``data`` writes (``{type: contains, value: "812"}``), every field checked; raises
    ``AssertionSpecError``. Defaults are not filled in, so ``to_dict()`` gives back what was written."""
    if not isinstance(data, Mapping):
        raise AssertionSpecError("type", f"an assertion is a mapping such as {{type: contains, value: \"812\"}}, "
                                          f"not {describe(data)}")
    kind, negate = _kind(data.get("type"))
    values: dict[str, Any] = {}
    params: dict[str, Any] = {}
    for key, value in data.items():
        if key == "type":
            continue
        if not isinstance(key, str):
            raise AssertionSpecError(str(key), f"keys are names, not {describe(key)}")
        if key in kind.fields:
            values[key] = _checked(kind, key, kind.fields[key], value)
        elif kind.scorer_params:
            params[key] = value
        else:
            raise AssertionSpecError(key, _unknown_key(kind, key))
    for key, field in kind.fields.items():
        if field.required and key not in values:
            raise AssertionSpecError(key, f"{kind.name} needs '{key}': {field.help}")
    _check_meaning(kind, values, params)
    options = {k: v for k, v in values.items() if k not in ("value", "weight", "metric")}
    return Assertion(kind.name, negate, values.get("value"), {**options, **params},
                     float(values.get("weight", 1.0)), values.get("metric"))


def _kind(written: Any) -> tuple[AssertionType, bool]:
    """The type and whether it is negated, from the ``type`` as written."""
    if not isinstance(written, str) or not written:
        raise AssertionSpecError("type", f"every assertion needs a type, such as contains or is-json "
                                         f"(got {describe(written)}); the types: {', '.join(ASSERTION_TYPES)}")
    name = written.removeprefix("not-")
    kind = ASSERTION_TYPES.get(name)
    if kind is None:
        instead = PROMPTFOO_INSTEAD.get(name)
        if instead:
            use = f": {instead.removeprefix('none: ')}" if instead.startswith("none") else f"; use {instead}"
            raise AssertionSpecError("type", f"'{written}' is a promptfoo type evaltune does not have{use}")
        hint = did_you_mean(written, assertion_labels())
        raise AssertionSpecError("type", f"unknown assertion type '{written}'{hint}; the types: "
                                         f"{', '.join(ASSERTION_TYPES)} (most with a not- form)")
    negate = written != name
    if negate and not kind.negatable:
        raise AssertionSpecError("type", f"{name} has no not- form; {_negation_hint(name)}")
    return kind, negate


def _negation_hint(name: str) -> str:
    return {"max-words": "write min-words instead", "min-words": "write max-words instead",
            "max-chars": "for at least N characters write {type: regex, value: '[\\s\\S]{N}'}",
            "scorer": "set 'min' or 'max' to the bound its value must not cross",
            "latency": "its threshold is the most milliseconds an output may take"}[name]


def _unknown_key(kind: AssertionType, key: str) -> str:
    fields = list(kind.fields)
    if key == "value" and "schema" in kind.fields:
        return f"{kind.name} takes no 'value'; write its JSON Schema under 'schema'"
    return f"{kind.name} has no field '{key}'{did_you_mean(key, fields)}; its fields: {', '.join(fields)}"


def _checked(kind: AssertionType, key: str, field: AssertionField, value: Any) -> Any:
    if _validator(kind.name, key).is_valid(value):
        return value
    quote = ""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and "text" in wanted(field.schema):
        quote = f" (write \"{value}\" in quotes: YAML reads {value} as a number)"
    raise AssertionSpecError(key, f"{kind.name}'s {key} must be {wanted(field.schema)}, not {describe(value)}{quote}")


def _check_meaning(kind: AssertionType, values: dict[str, Any], params: dict[str, Any]) -> None:
    """What a field's JSON Schema cannot say: the regex compiles, the schema is a schema, the scorer exists."""
    if kind.name == "regex":
        try:
            re.compile(values["value"])
        except re.error as error:
            raise AssertionSpecError("value", f"invalid regular expression {values['value']!r}: {error.msg} at "
                                              f"position {error.pos}; Python's re syntax, e.g. '\\bParis\\b'") from None
    if "schema" in values:
        check_json_schema(values["schema"])
    if kind.scorer_params:
        _check_scorer(values, params)
    metric = values.get("metric")
    if metric is not None and metric in assertion_labels():
        raise AssertionSpecError("metric", f"'{metric}' is an assertion type, whose rate pass_rate:{metric} the run "
                                           "already has; choose another name")


def check_json_schema(schema: Any) -> None:
    """Refuse a JSON Schema its own metaschema rejects (``{type: objct}``), naming what is wrong."""
    problem = _schema_problem(json.dumps(schema, sort_keys=True, default=str))  # a YAML date becomes its text
    if problem:
        raise AssertionSpecError("schema", problem)


@lru_cache(maxsize=1024)
def _schema_problem(schema_text: str) -> str | None:
    """Checked once per distinct schema: a suite's items often share one (from its defaults)."""
    import jsonschema

    schema = json.loads(schema_text)
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as error:
        where = "/".join(str(p) for p in error.path)
        return f"not a valid JSON Schema{' at ' + repr(where) if where else ''}: {error.message}"
    return None


def _check_scorer(values: dict[str, Any], params: dict[str, Any]) -> None:
    from evaltune.metrics.assertions.scorer_ids import ScorerNameError, checked_scorer_id

    try:
        checked_scorer_id(values["name"], params)
    except ScorerNameError as error:
        raise AssertionSpecError(error.field, str(error)) from None
    low, high = values.get("min"), values.get("max")
    if low is None and high is None:
        raise AssertionSpecError("min", f"scorer {values['name']} needs 'min', 'max' or both: the bounds its value "
                                        "must lie within")
    if low is not None and high is not None and low > high:
        raise AssertionSpecError("min", f"min {low} is above max {high}; swap them")


def describe(value: Any) -> str:
    """A value as a message names it: "the number 812", "a list", "nothing"."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value[:40]!r}" if value else "an empty text"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list" if value else "an empty list"
    return type(value).__name__


def wanted(schema: Mapping[str, Any]) -> str:
    """A field's JSON Schema in words: "a number from 0 to 1", "a non-empty list of texts"."""
    if "anyOf" in schema:
        return " or ".join(wanted(part) for part in schema["anyOf"])
    if "enum" in schema:
        return " or ".join(str(v) for v in schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        return "a non-empty text" if schema.get("minLength") else "a text"
    if kind == "array":
        return f"a non-empty list of {wanted(schema['items']).removeprefix('a non-empty ').removeprefix('a ')}s"
    if kind == "object":
        return "a mapping"
    noun = {"integer": "a whole number", "number": "a number", "boolean": "true or false"}.get(str(kind), str(kind))
    if "minimum" in schema and "maximum" in schema:
        return f"{noun} from {schema['minimum']} to {schema['maximum']}"
    if "minimum" in schema:
        return f"{noun} of {schema['minimum']} or more"
    if "exclusiveMinimum" in schema:
        return f"{noun} above {schema['exclusiveMinimum']}"
    return noun


@cache
def _validator(type_name: str, key: str) -> Any:
    """One validator per (type, field): a suite of thousands of items checks the same few field schemas."""
    import jsonschema

    return jsonschema.Draft202012Validator(ASSERTION_TYPES[type_name].fields[key].schema)
