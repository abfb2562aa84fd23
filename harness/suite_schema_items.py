"""The parts of the suite file's JSON Schema that describe an item and how its outputs are checked: the item and
its chat messages (from the ``Item`` fields' types and the item table in ``harness/loaders/items.py``'s docstring),
the ``assert`` checks (from ``ASSERTION_TYPES``), and the scorers those checks and a suite's ``scorers:`` name (from
the scorer registry, with each scorer's parameters). ``harness/suite_schema.py`` puts them under ``$defs`` beside
the suite's top-level keys, generation settings and ``source:``, and tells how the whole schema is made; the
helpers at the end serve both files.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable
from typing import Any

from evaltune.harness.loaders import items
from evaltune.harness.suite import Item, Message
from evaltune.metrics.assertions import ASSERTION_TYPES, AssertionType
from evaltune.metrics.plugins import BUILT_IN
from evaltune.metrics.registry import ScorerParam, ScorerSpec, all_scorers, scorer_names
from evaltune.metrics.scorer_params import format_value

Schema = dict[str, Any]

# Item texts may be written as whole numbers (ids, answers such as 1969): the item loader turns them into text.
ITEM_TEXT: Schema = {"type": ["string", "integer"], "pattern": r"\S"}


# --- items -----------------------------------------------------------------------------------------------------

# A value the loader reads as "none": absent, null or an empty list.
_NOTHING: Schema = {"type": ["array", "null"], "maxItems": 0}
_SOMETHING: Schema = {"not": {"anyOf": [{"type": "null"}, {"const": ""}]}}  # what items._Fields.text keeps
# Item fields whose YAML key differs from the field's name.
_ITEM_KEY_OF_FIELD = {"assertions": "assert"}


def item_schema() -> Schema:
    """One item: its keys from ``ITEM_KEYS``, their shapes from the ``Item`` fields and their help from the table."""
    help_texts = item_key_help()
    fields = {_ITEM_KEY_OF_FIELD.get(f.name, f.name): f for f in dataclasses.fields(Item)}
    hints = typing.get_type_hints(Item)
    properties: Schema = {}
    for key in ordered(items.ITEM_KEYS, fields):
        if key not in fields or key not in help_texts:
            raise LookupError(f"item key '{key}' has no field of Item or no row in harness/loaders/items.py's "
                              "docstring table; add it there")
        properties[key] = described(_item_value(key, hints[fields[key].name]), help_texts[key])
    required = [key for key, f in fields.items() if _has_no_default(f)]
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
        # items._check_consistency and items._gold, as far as a schema can say them
        "allOf": [
            {"if": {"required": ["choices"], "properties": {"choices": {"not": _NOTHING}}},
             "then": {"required": ["gold"], "properties": {"gold": _SOMETHING, "assert": _NOTHING}}},
            {"if": {"required": ["gold"], "properties": {"gold": {"not": _NOTHING}}},
             "then": {"required": ["choices"], "properties": {"choices": {"not": _NOTHING}}}},
            {"if": {"required": ["expect_abstention"], "properties": {"expect_abstention": {"const": True}}},
             "then": {"properties": {"references": _NOTHING}}},
            {"if": {"required": ["group"], "properties": {"group": _SOMETHING}},
             "then": {"required": ["value"], "properties": {"value": _SOMETHING}}},
        ],
    }


def _item_value(key: str, annotation: Any) -> Schema:
    """The shape of an item key's value: the field's type as ``items.item_from_dict`` reads it."""
    if key == "references":
        # _references refuses a lone number (YAML has already rewritten what was typed)
        return {"type": ["string", "array", "null"], "pattern": r"\S", "items": ITEM_TEXT}
    if annotation is str:  # required text
        return ITEM_TEXT
    if annotation == str | None:
        return {"type": ["string", "integer", "null"]}
    if annotation == tuple[str, ...]:  # one text is taken as a list of one
        return {"type": ["string", "integer", "array", "null"], "pattern": r"\S", "items": ITEM_TEXT}
    if annotation == tuple[int, ...]:  # choice indices; one index is taken as a list of one
        index = {"type": "integer", "minimum": 0}
        return {"type": ["integer", "array", "null"], "minimum": 0, "items": index, "uniqueItems": True}
    if annotation is bool:
        return {"type": ["boolean", "null"]}
    if annotation == dict[str, Any]:
        return {"type": ["object", "null"]}
    if annotation == str | tuple[Message, ...]:
        return {"anyOf": [{"type": ["string", "integer"]},
                          {"type": "array", "items": {"$ref": "#/$defs/message"}, "minItems": 1}]}
    if key == "assert":
        return {"$ref": "#/$defs/assertions"}
    raise LookupError(f"item key '{key}' has a type ({annotation}) harness/suite_schema_items.py cannot describe yet")


def message_schema() -> Schema:
    """One chat message of an item's ``input``: a role from ``ROLES`` and its text."""
    return {
        "type": "object",
        "description": "One chat message; the last one is the user's.",
        "properties": {
            "role": {"enum": list(items.ROLES)},
            "content": {"type": "string", "pattern": r"\S"},
        },
        "required": ["role", "content"],
        "additionalProperties": False,
    }


def item_key_help() -> dict[str, str]:
    """Each item key's help: the table in ``harness/loaders/items.py``'s docstring, so the two cannot differ.
    A row is ``key   text`` (``key, key   text`` for two keys) with continuation lines indented further."""
    table = (items.__doc__ or "").split("::", 1)[-1]
    help_texts: dict[str, str] = {}
    keys: list[str] = []
    indent = -1
    for line in table.splitlines()[1:]:
        if not line.strip():
            if help_texts:
                break
            continue
        depth = len(line) - len(line.lstrip())
        indent = depth if indent < 0 else indent
        if depth == indent:  # a new row
            names, _, text = line.strip().partition("  ")
            keys = [name.strip() for name in names.split(",")]
            help_texts.update(dict.fromkeys(keys, text.strip()))
        else:
            for key in keys:
                help_texts[key] += " " + line.strip()
    return help_texts

# --- scorers ---------------------------------------------------------------------------------------------------


def scorer_specs(built_in_only: bool) -> dict[str, ScorerSpec]:
    """Every name a suite may write (a scorer's or a preset's) and its scorer; ``built_in_only`` leaves out the
    scorers of installed plugins."""
    specs = [spec for spec in all_scorers() if not built_in_only or spec.origin == BUILT_IN]
    by_name = {name: spec for spec in specs for name in (spec.base, *spec.presets)}
    return {name: by_name[name] for name in scorer_names() if name in by_name}


def scorer_defs(scorers: dict[str, ScorerSpec]) -> Schema:
    """``scorer_name`` (every name a suite may write), ``scorer_id`` (a name with parameters in parentheses),
    ``scorer`` (either, or a mapping of ``name`` and parameters) and ``scorer_params``: for each name, the
    parameters its mapping may hold."""
    descriptions = [
        spec.description if name == spec.base else f"{spec.description} ({spec.base} with "
        f"{', '.join(f'{k}={format_value(v)}' for k, v in sorted(spec.presets[name].items()))})"
        for name, spec in scorers.items()
    ]
    either_name = {"anyOf": [{"$ref": "#/$defs/scorer_name"}, {"$ref": "#/$defs/scorer_id"}]}
    return {
        "scorer_name": {"enum": list(scorers), "enumDescriptions": descriptions},
        "scorer_id": {
            "type": "string",
            "description": "A scorer with its parameters written as an id, e.g. similar(threshold=0.75).",
            # names are [A-Za-z_][\w.-]*: only the dot needs escaping, in Python's regexes and in editors'
            "pattern": rf"^\s*(?:{'|'.join(name.replace('.', '[.]') for name in scorers)})\s*\(.*\)\s*$",
        },
        "scorer": {
            "anyOf": [
                {"$ref": "#/$defs/scorer_name"},
                {"$ref": "#/$defs/scorer_id"},
                {"type": "object", "description": "A scorer with parameters: {name: ..., parameter: value}.",
                 "properties": {"name": described(either_name, "The scorer's name ('evaltune scorers list').")},
                 "required": ["name"],
                 "allOf": [{"$ref": "#/$defs/scorer_params"}]},
            ]
        },
        "scorer_params": {"allOf": [_params_branch(name, spec, allowed=("name",)) for name, spec in scorers.items()]},
    }


def _params_branch(name: str, spec: ScorerSpec, *, allowed: Iterable[str]) -> Schema:
    """If ``name`` is the one written, the mapping holds only ``allowed`` keys and the scorer's parameters."""
    params = {param.name: described(_param_value(param), param.help or f"a parameter of {spec.base}")
              for param in spec.params}
    return {
        "if": {"properties": {"name": {"const": name}}, "required": ["name"]},
        "then": {"properties": {**dict.fromkeys(allowed, True), **params}, "additionalProperties": False},
    }


_PARAM_TYPES = {"number": "number", "integer": "integer", "text": "string", "boolean": "boolean"}


def _param_value(param: ScorerParam) -> Schema:
    """A parameter's shape, as ``metrics.scorer_params.check_value`` takes it."""
    shape: Schema = {"type": [_PARAM_TYPES[param.kind], "null"] if param.optional else _PARAM_TYPES[param.kind]}
    if param.choices:
        # a text choice such as "1" may be written unquoted: YAML reads it as a number, the check turns it back
        numbers = [number for number in map(_as_number, param.choices) if number is not None]
        shape["enum"] = [*param.choices, *numbers, *([None] if param.optional else [])]
        if numbers:
            shape["type"] = sorted({*_as_list(shape["type"]), "number"})
    shape["default"] = param.default
    return shape


def _as_number(choice: Any) -> int | float | None:
    if not isinstance(choice, str):
        return None
    for kind in (int, float):
        try:
            number = kind(choice)
        except ValueError:
            continue
        return number if str(number) == choice else None
    return None


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# --- assertions ------------------------------------------------------------------------------------------------


def assertion_defs(scorers: dict[str, ScorerSpec]) -> Schema:
    """``assertions`` (an ``assert`` list) and ``assertion``: a ``type`` from ``ASSERTION_TYPES`` (or its ``not-``
    form) and, per type, the fields that type takes."""
    labels: list[str] = []
    descriptions: list[str] = []
    for kind in ASSERTION_TYPES.values():
        for label in kind.labels:
            labels.append(label)
            descriptions.append(kind.description[:1].upper() + kind.description[1:] if label == kind.name else
                                f"The opposite of {kind.name}: passes where {kind.name} fails.")
    return {
        "assertions": {"type": ["array", "null"], "items": {"$ref": "#/$defs/assertion"}},
        "assertion": {
            "type": "object",
            "description": "One check of the output, e.g. {type: contains, value: \"812\"}.",
            "properties": {"type": {"enum": labels, "enumDescriptions": descriptions}},
            "required": ["type"],
            "allOf": [_assertion_branch(kind, scorers) for kind in ASSERTION_TYPES.values()],
        },
    }


def _assertion_branch(kind: AssertionType, scorers: dict[str, ScorerSpec]) -> Schema:
    """If ``type`` is one of ``kind``'s labels, the assertion holds ``kind``'s fields (its required ones among
    them) and nothing else: a type that takes a scorer's parameters (``scorer``) also holds the named scorer's."""
    fields = {name: described(field.schema, field.help) for name, field in kind.fields.items()}
    then: Schema = {
        "properties": {"type": True, **fields},
        "required": [name for name, field in kind.fields.items() if field.required],
    }
    if kind.scorer_params:
        # ``name`` names the scorer, as in a suite's scorers list; the keys besides the fields are its parameters
        then["properties"]["name"] = described(
            {"anyOf": [{"$ref": "#/$defs/scorer_name"}, {"$ref": "#/$defs/scorer_id"}]}, kind.fields["name"].help)
        then["allOf"] = [_params_branch(name, spec, allowed=("type", *kind.fields)) for name, spec in scorers.items()]
    else:
        then["additionalProperties"] = False
    return {"if": {"properties": {"type": {"enum": list(kind.labels)}}, "required": ["type"]}, "then": then}


# --- helpers ---------------------------------------------------------------------------------------------------


def described(schema: Schema, help_text: str) -> Schema:
    """``schema`` with ``help_text`` as its description, written first so editors' tooltips read well."""
    return {"description": help_text, **schema}


def ordered(keys: Iterable[str], order: Iterable[str]) -> list[str]:
    """``keys`` in the order of their definition (``order``), any others after them sorted: the same file on every
    machine, in the order a reader expects."""
    keys = set(keys)
    first = [key for key in order if key in keys]
    return first + sorted(keys - set(first))


def _has_no_default(field: dataclasses.Field[Any]) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


__all__ = ["ITEM_TEXT", "Schema", "assertion_defs", "described", "item_key_help", "item_schema",
           "message_schema", "ordered", "scorer_defs", "scorer_specs"]
