"""The JSON Schema (draft 2020-12) of a suite file, generated from the definitions the loader checks against.

Editors use it to complete and check suite YAML (VS Code's YAML extension and any other yaml-language-server
client). The keys come from ``SUITE_KEYS``, ``ITEM_KEYS``, ``GENERATION_KEYS`` and the ``source:`` key sets; the
value shapes from the ``Item`` and ``GenerationSettings`` fields' types, read the way the loader reads them; help
from the item table in ``harness/loaders/items.py``'s docstring and ``GENERATION_HELP`` (the top-level and
``source:`` keys' help is below, as their loaders hold none); formats from ``FORMATS`` and installed loader plugins;
scorer names and their parameters from the scorer registry; assertion types and their fields from
``ASSERTION_TYPES``. A key the generator cannot describe raises, so a new key cannot be left out, and
``tests/test_suite_schema.py`` holds the schema and the loader to the same verdicts on a table of suites.

The loader stays the authority: the schema says what it can (a few rules, such as ``gold`` indices being in range
or a regex compiling, are only checked at load time). It uses only keywords draft-07 also has, with ``$defs``
reached through JSON pointers, since yaml-language-server validates with a draft-07 engine.

``harness/suite.schema.json`` is the built-in scorers' copy, shipped in the package; ``evaltune suites schema``
writes one that also knows the scorers of installed plugins.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from evaltune.harness import prompt_variants
from evaltune.harness.loaders import formats, items, yaml_suite
from evaltune.harness.loaders.generation import GENERATION_HELP, GENERATION_KEYS
from evaltune.harness.suite import GenerationSettings, Item, Message
from evaltune.metrics.assertions import ASSERTION_TYPES, AssertionType
from evaltune.metrics.plugins import BUILT_IN, LOADERS_GROUP, origin, plugin_entry_points
from evaltune.metrics.registry import ScorerParam, ScorerSpec, all_scorers, scorer_names
from evaltune.metrics.scorer_params import format_value

Schema = dict[str, Any]

DIALECT = "https://json-schema.org/draft/2020-12/schema"
SHIPPED_SCHEMA = Path(__file__).resolve().parent / "suite.schema.json"
REGENERATE = "evaltune suites schema --built-in-only -o harness/suite.schema.json"

TEXT: Schema = {"type": "string", "pattern": r"\S"}  # non-empty text, as the loaders' checks want it
TEXT_OR_NULL: Schema = {"type": ["string", "null"], "pattern": r"\S"}
# Item texts may be written as whole numbers (ids, answers such as 1969): the item loader turns them into text.
ITEM_TEXT: Schema = {"type": ["string", "integer"], "pattern": r"\S"}

# Top-level keys: what each holds, shown by editors. yaml_suite.py's docstring shows them in an example.
SUITE_KEY_HELP = {
    "name": "The suite's name (required); runs and reports are listed under it.",
    "description": "What the suite checks, in a sentence or two (shown by 'evaltune suites list').",
    "generation": "How outputs are generated; every setting is optional.",
    "scorers": "Scorers run on every output: registry names, or {name: ..., parameter: value} for a scorer with "
               "parameters ('evaltune scorers list' shows them all).",
    "template": "Turns each text input into a prompt; placeholders {input}, {context} and {id} "
                "({{ and }} for literal braces).",
    "context_template": "The template for items that have a context ('template' serves the others).",
    "defaults": "Applied to every item that generates text: 'assert' checks listed before each item's own "
                "(promptfoo's defaultTest).",
    "items": "The items, inline. Give exactly one of items, items_file and source.",
    "items_file": "A .jsonl or .csv file of items, relative to the suite file (instead of items).",
    "source": "Items read from a public data format, e.g. {format: truthfulqa_mc, path: data/mc_task.json}, or "
              "from a Hugging Face dataset, {format: hf, dataset: owner/name} (instead of items).",
    "prompts": "Prompt variants: name -> {system, template}. 'evaltune run' runs every variant on every --model (a "
               "sweep). Templates are Jinja2 over the item's fields: {{ input }}, {{ context }}, {{ id }}, "
               "{{ references }}, {{ tags }}, {{ metadata }}. Instead of template and context_template.",
    "judge": "The model that judges outputs for the scorers that need one (llm-rubric, judge): {model: a local "
             "folder or openai:URL, model_name: the name an endpoint serves}, instead of --judge or "
             "EVALTUNE_JUDGE_MODEL.",
}
VARIANT_KEY_HELP = {
    "system": "The system prompt of this variant (left out: the suite's generation.system_prompt).",
    "template": "Jinja2 turning each text input into the prompt, e.g. 'Context: {{ context }}\\nQuestion: "
                "{{ input }}'; it must use {{ input }}. Left out: the inputs as they are.",
}

SOURCE_KEY_HELP = {
    "format": "The data format: a loader's name, or hf for a Hugging Face dataset.",
    "path": "The data file or folder, relative to the suite file.",
    "limit": "Read at most this many items: a whole number >= 1.",
    "dataset": "The Hugging Face dataset id, owner/name (needs the network).",
    "split": "The split to read (test when left out).",
    "config": "The dataset's configuration, when it has several.",
    "columns": "The dataset column of each item key, e.g. {input: question}; a key left out is read from the "
               "column of the same name.",
}


def suite_schema(*, built_in_only: bool = False) -> Schema:
    """The JSON Schema of a suite file. ``built_in_only`` leaves out what installed plugins add (their scorers and
    formats): the copy shipped with the package."""
    scorers = _scorer_specs(built_in_only)
    return {
        "$schema": DIALECT,
        "title": "evaltune suite file",
        "description": "A suite: its items, how to generate their outputs and how to score them. Generated by "
                       "'evaltune suites schema' from the loader's own definitions.",
        "type": "object",
        "properties": {key: _described(_top_level(key), SUITE_KEY_HELP[key])
                       for key in _ordered(yaml_suite.SUITE_KEYS, SUITE_KEY_HELP)},
        "required": ["name"],
        "additionalProperties": False,
        # exactly one place the items come from
        "oneOf": [{"required": [key]} for key in yaml_suite.ITEM_SOURCES],
        # prompt variants take the place of the templates
        "if": {"required": ["prompts"], "properties": {"prompts": {"type": "object"}}},
        "then": {"properties": {key: {"type": "null"} for key in yaml_suite.TEMPLATE_KEYS}},
        "$defs": {
            "item": _item_schema(),
            "prompt_variant": _variant_schema(),
            "judge": _judge_schema(),
            "message": _message_schema(),
            "generation": _generation_schema(),
            "source": _source_schema(built_in_only),
            **_scorer_defs(scorers),
            **_assertion_defs(scorers),
        },
    }


def schema_text(schema: Schema) -> str:
    """The schema as the shipped file holds it: indented JSON, one trailing newline."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def shipped_schema() -> Schema:
    """The schema shipped with the package (built-in scorers only)."""
    loaded: Schema = json.loads(SHIPPED_SCHEMA.read_text(encoding="utf-8"))
    return loaded


def _top_level(key: str) -> Schema:
    shapes: dict[str, Schema] = {
        "name": TEXT,
        "description": TEXT_OR_NULL,
        "generation": {"$ref": "#/$defs/generation"},
        "scorers": {  # a list, or one name
            "anyOf": [
                {"type": "array", "items": {"$ref": "#/$defs/scorer"}, "uniqueItems": True},
                {"$ref": "#/$defs/scorer_name"},
                {"$ref": "#/$defs/scorer_id"},
            ]
        },
        "template": TEXT_OR_NULL,
        "context_template": TEXT_OR_NULL,
        "defaults": {
            "type": ["object", "null"],
            "properties": {key: {"$ref": "#/$defs/assertions"} for key in yaml_suite.DEFAULTS_KEYS},
            "additionalProperties": False,
        },
        "items": {"type": "array", "items": {"$ref": "#/$defs/item"}, "minItems": 1},
        "items_file": TEXT,
        "source": {"$ref": "#/$defs/source"},
        "prompts": {
            "type": ["object", "null"],
            "minProperties": 1,
            "propertyNames": {"pattern": prompt_variants.VARIANT_NAME.pattern},
            "additionalProperties": {"$ref": "#/$defs/prompt_variant"},
        },
        "judge": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/judge"}]},
    }
    if key not in shapes or key not in SUITE_KEY_HELP:
        raise LookupError(f"top-level key '{key}' has no schema; describe it in harness/suite_schema.py")
    return shapes[key]


def _variant_schema() -> Schema:
    """One variant of ``prompts:``, as ``harness.prompt_variants`` reads it: system and/or template."""
    properties = {key: _described(TEXT_OR_NULL, VARIANT_KEY_HELP[key])
                  for key in _ordered(prompt_variants.VARIANT_KEYS, VARIANT_KEY_HELP)}
    return {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "anyOf": [{"required": [key], "properties": {key: {"type": "string"}}} for key in properties],
    }


def _judge_schema() -> Schema:
    """The ``judge:`` block, as the judges' own parser reads it (``JUDGE_BLOCK_SCHEMA`` sits beside that parser)."""
    from evaltune.harness.judges.config import JUDGE_BLOCK_SCHEMA

    return {key: value for key, value in JUDGE_BLOCK_SCHEMA.items() if key != "description"}


# --- items -----------------------------------------------------------------------------------------------------

# A value the loader reads as "none": absent, null or an empty list.
_NOTHING: Schema = {"type": ["array", "null"], "maxItems": 0}
_SOMETHING: Schema = {"not": {"anyOf": [{"type": "null"}, {"const": ""}]}}  # what items._Fields.text keeps
# Item fields whose YAML key differs from the field's name.
_ITEM_KEY_OF_FIELD = {"assertions": "assert"}


def _item_schema() -> Schema:
    help_texts = item_key_help()
    fields = {_ITEM_KEY_OF_FIELD.get(f.name, f.name): f for f in dataclasses.fields(Item)}
    hints = typing.get_type_hints(Item)
    properties: Schema = {}
    for key in _ordered(items.ITEM_KEYS, fields):
        if key not in fields or key not in help_texts:
            raise LookupError(f"item key '{key}' has no field of Item or no row in harness/loaders/items.py's "
                              "docstring table; add it there")
        properties[key] = _described(_item_value(key, hints[fields[key].name]), help_texts[key])
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
    raise LookupError(f"item key '{key}' has a type ({annotation}) harness/suite_schema.py cannot describe yet")


def _message_schema() -> Schema:
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


# --- generation settings and sources ---------------------------------------------------------------------------

# The ranges generation.py's checks enforce (tests/test_suite_schema.py holds the two to the same verdicts).
_GENERATION_RANGES: dict[str, Schema] = {
    "max_new_tokens": {"minimum": 1},
    "temperature": {"minimum": 0},
    "top_p": {"exclusiveMinimum": 0, "maximum": 1},
    "samples": {"minimum": 1},
    "batch_size": {"minimum": 1},
}


def _generation_schema() -> Schema:
    hints = typing.get_type_hints(GenerationSettings)
    defaults = GenerationSettings()
    properties: Schema = {}
    for key in _ordered(GENERATION_KEYS, (f.name for f in dataclasses.fields(GenerationSettings))):
        if key not in GENERATION_HELP:
            raise LookupError(f"generation setting '{key}' has no help; add it to GENERATION_HELP in "
                              "harness/loaders/generation.py")
        shape = {**_setting_value(key, hints[key]), **_GENERATION_RANGES.get(key, {})}
        default = getattr(defaults, key)
        shape["default"] = list(default) if isinstance(default, tuple) else default
        properties[key] = _described(shape, GENERATION_HELP[key])
    return {"type": ["object", "null"], "properties": properties, "additionalProperties": False}


def _setting_value(key: str, annotation: Any) -> Schema:
    """A setting's shape: its field's type as ``generation.generation_from_dict`` reads it."""
    if annotation is int:
        return {"type": "integer"}
    if annotation is float:
        return {"type": "number"}
    if annotation == tuple[str, ...]:  # one text is taken as a list of one
        return {"type": ["string", "array", "null"], "minLength": 1, "items": {"type": "string", "minLength": 1}}
    if get_origin(annotation) is Literal:
        return {"enum": list(get_args(annotation))}
    if annotation == str | None:
        return {"type": ["string", "null"]}
    raise LookupError(f"generation setting '{key}' has a type ({annotation}) harness/suite_schema.py cannot "
                      "describe yet")


def _source_schema(built_in_only: bool) -> Schema:
    built_in = [*formats.FORMATS, formats.HUB_FORMAT]
    added = [] if built_in_only else [name for name in formats.known_formats() if name not in built_in]
    descriptions = [*(_first_line(loader) for loader in formats.FORMATS.values()),
                    "A Hugging Face dataset by id (needs the network).", *map(_plugin_format_help, added)]
    shapes: dict[str, Schema] = {
        "format": {"enum": [*built_in, *added], "enumDescriptions": descriptions},
        "path": TEXT,
        "limit": {"type": ["integer", "null"], "minimum": 1},
        "dataset": TEXT,
        "split": TEXT,
        "config": {"type": ["string", "null"]},
        "columns": {"type": ["object", "null"], "propertyNames": {"enum": sorted(items.ITEM_KEYS)},
                    "additionalProperties": {"type": "string"}},
    }

    def keys(allowed: Iterable[str]) -> Schema:
        return {key: _described(shapes[key], SOURCE_KEY_HELP[key]) for key in _ordered(allowed, SOURCE_KEY_HELP)}

    hub = {"properties": {"format": {"const": formats.HUB_FORMAT}}, "required": ["format"]}
    return {
        "type": "object",
        "properties": {"format": _described(shapes["format"], SOURCE_KEY_HELP["format"])},
        "required": ["format"],
        "if": hub,
        "then": {"properties": keys(formats.HUB_KEYS), "required": ["dataset"], "additionalProperties": False},
        "else": {"properties": keys(formats.PATH_KEYS), "required": ["path"], "additionalProperties": False},
    }


def _plugin_format_help(name: str) -> str:
    points = plugin_entry_points(LOADERS_GROUP, name)
    return f"Added by an installed package ({origin(points[0])})." if points else "Added by an installed package."


# --- scorers ---------------------------------------------------------------------------------------------------


def _scorer_specs(built_in_only: bool) -> dict[str, ScorerSpec]:
    """Every name a suite may write (a scorer's or a preset's) and its scorer; ``built_in_only`` leaves out the
    scorers of installed plugins."""
    specs = [spec for spec in all_scorers() if not built_in_only or spec.origin == BUILT_IN]
    by_name = {name: spec for spec in specs for name in (spec.base, *spec.presets)}
    return {name: by_name[name] for name in scorer_names() if name in by_name}


def _scorer_defs(scorers: dict[str, ScorerSpec]) -> Schema:
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
                 "properties": {"name": _described(either_name, "The scorer's name ('evaltune scorers list').")},
                 "required": ["name"],
                 "allOf": [{"$ref": "#/$defs/scorer_params"}]},
            ]
        },
        "scorer_params": {"allOf": [_params_branch(name, spec, allowed=("name",)) for name, spec in scorers.items()]},
    }


def _params_branch(name: str, spec: ScorerSpec, *, allowed: Iterable[str]) -> Schema:
    """If ``name`` is the one written, the mapping holds only ``allowed`` keys and the scorer's parameters."""
    params = {param.name: _described(_param_value(param), param.help or f"a parameter of {spec.base}")
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


def _assertion_defs(scorers: dict[str, ScorerSpec]) -> Schema:
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
    fields = {name: _described(field.schema, field.help) for name, field in kind.fields.items()}
    then: Schema = {
        "properties": {"type": True, **fields},
        "required": [name for name, field in kind.fields.items() if field.required],
    }
    if kind.scorer_params:
        # ``name`` names the scorer, as in a suite's scorers list; the keys besides the fields are its parameters
        then["properties"]["name"] = _described(
            {"anyOf": [{"$ref": "#/$defs/scorer_name"}, {"$ref": "#/$defs/scorer_id"}]}, kind.fields["name"].help)
        then["allOf"] = [_params_branch(name, spec, allowed=("type", *kind.fields)) for name, spec in scorers.items()]
    else:
        then["additionalProperties"] = False
    return {"if": {"properties": {"type": {"enum": list(kind.labels)}}, "required": ["type"]}, "then": then}


# --- helpers ---------------------------------------------------------------------------------------------------


def _described(schema: Schema, help_text: str) -> Schema:
    return {"description": help_text, **schema}


def _ordered(keys: Iterable[str], order: Iterable[str]) -> list[str]:
    """``keys`` in the order of their definition (``order``), any others after them sorted: the same file on every
    machine, in the order a reader expects."""
    keys = set(keys)
    first = [key for key in order if key in keys]
    return first + sorted(keys - set(first))


def _has_no_default(field: dataclasses.Field[Any]) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def _first_line(fn: Any) -> str:
    doc = inspect.getdoc(fn) or ""
    return doc.splitlines()[0] if doc else ""


__all__ = ["DIALECT", "REGENERATE", "SHIPPED_SCHEMA", "item_key_help", "schema_text", "shipped_schema",
           "suite_schema"]
