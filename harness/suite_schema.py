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

The item, its chat messages, its ``assert`` checks and the scorers are described in
``harness/suite_schema_items.py``; this module adds the top-level keys, ``prompts:``, ``judge:``, the generation
settings and ``source:``, and puts them all together.

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
from evaltune.harness.suite import GenerationSettings
from evaltune.harness.suite_schema_items import (
    Schema,
    assertion_defs,
    described,
    item_key_help,
    item_schema,
    message_schema,
    ordered,
    scorer_defs,
    scorer_specs,
)
from evaltune.metrics.plugins import LOADERS_GROUP, origin, plugin_entry_points

DIALECT = "https://json-schema.org/draft/2020-12/schema"
SHIPPED_SCHEMA = Path(__file__).resolve().parent / "suite.schema.json"
REGENERATE = "evaltune suites schema --built-in-only -o harness/suite.schema.json"

TEXT: Schema = {"type": "string", "pattern": r"\S"}  # non-empty text, as the loaders' checks want it
TEXT_OR_NULL: Schema = {"type": ["string", "null"], "pattern": r"\S"}

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
    scorers = scorer_specs(built_in_only)
    return {
        "$schema": DIALECT,
        "title": "evaltune suite file",
        "description": "A suite: its items, how to generate their outputs and how to score them. Generated by "
                       "'evaltune suites schema' from the loader's own definitions.",
        "type": "object",
        "properties": {key: described(_top_level(key), SUITE_KEY_HELP[key])
                       for key in ordered(yaml_suite.SUITE_KEYS, SUITE_KEY_HELP)},
        "required": ["name"],
        "additionalProperties": False,
        # exactly one place the items come from
        "oneOf": [{"required": [key]} for key in yaml_suite.ITEM_SOURCES],
        # prompt variants take the place of the templates
        "if": {"required": ["prompts"], "properties": {"prompts": {"type": "object"}}},
        "then": {"properties": {key: {"type": "null"} for key in yaml_suite.TEMPLATE_KEYS}},
        "$defs": {
            "item": item_schema(),
            "prompt_variant": _variant_schema(),
            "judge": _judge_schema(),
            "message": message_schema(),
            "generation": _generation_schema(),
            "source": _source_schema(built_in_only),
            **scorer_defs(scorers),
            **assertion_defs(scorers),
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
    properties = {key: described(TEXT_OR_NULL, VARIANT_KEY_HELP[key])
                  for key in ordered(prompt_variants.VARIANT_KEYS, VARIANT_KEY_HELP)}
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
    for key in ordered(GENERATION_KEYS, (f.name for f in dataclasses.fields(GenerationSettings))):
        if key not in GENERATION_HELP:
            raise LookupError(f"generation setting '{key}' has no help; add it to GENERATION_HELP in "
                              "harness/loaders/generation.py")
        shape = {**_setting_value(key, hints[key]), **_GENERATION_RANGES.get(key, {})}
        default = getattr(defaults, key)
        shape["default"] = list(default) if isinstance(default, tuple) else default
        properties[key] = described(shape, GENERATION_HELP[key])
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
        return {key: described(shapes[key], SOURCE_KEY_HELP[key]) for key in ordered(allowed, SOURCE_KEY_HELP)}

    hub = {"properties": {"format": {"const": formats.HUB_FORMAT}}, "required": ["format"]}
    return {
        "type": "object",
        "properties": {"format": described(shapes["format"], SOURCE_KEY_HELP["format"])},
        "required": ["format"],
        "if": hub,
        "then": {"properties": keys(formats.HUB_KEYS), "required": ["dataset"], "additionalProperties": False},
        "else": {"properties": keys(formats.PATH_KEYS), "required": ["path"], "additionalProperties": False},
    }


def _plugin_format_help(name: str) -> str:
    points = plugin_entry_points(LOADERS_GROUP, name)
    return f"Added by an installed package ({origin(points[0])})." if points else "Added by an installed package."


def _first_line(fn: Any) -> str:
    doc = inspect.getdoc(fn) or ""
    return doc.splitlines()[0] if doc else ""


__all__ = ["DIALECT", "REGENERATE", "SHIPPED_SCHEMA", "item_key_help", "schema_text", "shipped_schema",
           "suite_schema"]
