"""JSON in the output: ``is-json`` (the whole output) and ``contains-json`` (a value inside prose or a code fence),
each optionally checked against a JSON Schema with jsonschema."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from evaltune.metrics.assertions.outcome import judged
from evaltune.metrics.records import Assertion, AssertionResult, Example

_FENCE = re.compile(r"```[\w-]*[ \t]*\n(.*?)```", re.DOTALL)
_OPENER = re.compile(r"[{\[]")
_DECODER = json.JSONDecoder()


@lru_cache(maxsize=256)
def _validator(schema_text: str) -> Any:
    import jsonschema

    schema = json.loads(schema_text)
    return jsonschema.validators.validator_for(schema)(schema)


def schema_problem(value: Any, schema: dict[str, Any] | None) -> str | None:
    """Why ``value`` does not satisfy ``schema`` ("schema: 'action' is a required property"), or None."""
    if schema is None:
        return None
    import jsonschema

    validator = _validator(json.dumps(schema, sort_keys=True, default=str))
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is None:
        return None
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return f"schema: {error.message}" + (f" at ${where}" if where else "")


def is_json(assertion: Assertion, example: Example) -> AssertionResult:
    try:
        value = json.loads(example.output)
    except json.JSONDecodeError as error:
        return judged(assertion, False, f"not valid JSON: {error.msg} at line {error.lineno} col {error.colno}")
    problem = schema_problem(value, assertion.options.get("schema"))
    if problem:
        return judged(assertion, False, problem)
    what = "valid JSON matching the schema" if "schema" in assertion.options else "valid JSON"
    return judged(assertion, True, what, f"to be {what}")


def json_values(text: str) -> Iterator[Any]:
    """Each JSON object or array in ``text``: fenced code blocks first, then any that starts with { or [."""
    for block in _FENCE.findall(text):
        try:
            value = json.loads(block)
        except json.JSONDecodeError:
            continue
        yield value
    start = 0
    while (found := _OPENER.search(text, start)) is not None:
        try:
            value, end = _DECODER.raw_decode(text, found.start())
        except json.JSONDecodeError:
            start = found.start() + 1
            continue
        yield value
        start = end


def contains_json(assertion: Assertion, example: Example) -> AssertionResult:
    schema = assertion.options.get("schema")
    first_problem = None
    for value in json_values(example.output):
        problem = schema_problem(value, schema)
        if problem is None:
            what = "a JSON value matching the schema" if schema is not None else "a JSON value"
            return judged(assertion, True, f"holds {what}", f"to hold {what}")
        first_problem = first_problem or problem
    return judged(assertion, False, first_problem or "no JSON object or array in the output")
