"""The assertion types a suite may write, with their fields: one catalogue that the loader's checks, the suite
file's JSON Schema and the README's promptfoo table are all generated from.

Each field carries a JSON Schema (with its ``default`` where it has one, which the checks read) and a help line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from evaltune.metrics.judging import LARGEST_SCALE, SMALLEST_SCALE


@dataclass(frozen=True)
class AssertionField:
    """One key of an assertion: the JSON Schema its value must satisfy, whether it must be written, and its help."""

    schema: dict[str, Any]
    required: bool
    help: str

    @property
    def default(self) -> Any:
        return self.schema.get("default")


@dataclass(frozen=True)
class AssertionType:
    """One assertion type. ``fields`` holds every key it takes besides ``type`` (``weight`` and ``metric``
    included); ``promptfoo`` is the promptfoo type it stands for (or how to write it there). A ``scorer_params``
    type also takes the named scorer's own parameters as keys (checked against the scorer registry)."""

    name: str
    description: str
    negatable: bool
    fields: dict[str, AssertionField]
    promptfoo: str
    scorer_params: bool = False

    @property
    def labels(self) -> tuple[str, ...]:
        """The type names a suite may write for it: ``contains`` and ``not-contains``."""
        return (self.name, f"not-{self.name}") if self.negatable else (self.name,)


TEXT: dict[str, Any] = {"type": "string", "minLength": 1}
TEXTS: dict[str, Any] = {"type": "array", "items": TEXT, "minItems": 1}
TEXT_OR_TEXTS: dict[str, Any] = {"anyOf": [TEXT, TEXTS]}
COUNT: dict[str, Any] = {"type": "integer", "minimum": 0}
JSON_SCHEMA: dict[str, Any] = {"type": "object"}


def _share(default: float) -> dict[str, Any]:
    return {"type": "number", "minimum": 0, "maximum": 1, "default": default}


WEIGHT = AssertionField({"type": "number", "minimum": 0, "default": 1.0}, False,
                        "how much it counts in the item's score; 0 = reported, never fails the item")
METRIC = AssertionField({"type": "string", "minLength": 1}, False,
                        "a name to aggregate under: the run gets pass_rate:<metric>")


def _type(name: str, description: str, promptfoo: str, /, negatable: bool = True, scorer_params: bool = False,
          **fields: AssertionField) -> AssertionType:
    return AssertionType(name, description, negatable, {**fields, "weight": WEIGHT, "metric": METRIC}, promptfoo,
                         scorer_params)


def _value(schema: dict[str, Any], help: str) -> AssertionField:
    return AssertionField(schema, True, help)


def _schema_field() -> AssertionField:
    return AssertionField(JSON_SCHEMA, False, "a JSON Schema the value must satisfy (checked with jsonschema)")


_TYPES = (
    _type("equals", "the output is exactly the text", "equals", value=_value({"type": "string"}, "the whole output")),
    _type("contains", "the output contains the text (case matters)", "contains", value=_value(TEXT, "the text")),
    _type("icontains", "the output contains the text, ignoring case", "icontains",
          value=_value(TEXT, "the text")),
    _type("contains-any", "the output contains at least one of the texts", "contains-any",
          value=_value(TEXTS, "a list of texts")),
    _type("contains-all", "the output contains every one of the texts", "contains-all",
          value=_value(TEXTS, "a list of texts")),
    _type("icontains-any", "as contains-any, ignoring case", "icontains-any", value=_value(TEXTS, "a list of texts")),
    _type("icontains-all", "as contains-all, ignoring case", "icontains-all", value=_value(TEXTS, "a list of texts")),
    _type("starts-with", "the output starts with the text", "starts-with", value=_value(TEXT, "the text")),
    _type("regex", "the regular expression (Python syntax) matches somewhere in the output", "regex",
          value=_value(TEXT, "a Python regular expression, e.g. '\\bParis\\b' or '(?i)paris'")),
    _type("is-json", "the whole output is JSON (and satisfies the schema, when one is given)", "is-json",
          schema=_schema_field()),
    _type("contains-json", "the output holds a JSON value, in prose or a code fence (satisfying the schema)",
          "contains-json", schema=_schema_field()),
    _type("max-words", "the output has at most this many words", "`word-count` (max)", negatable=False,
          value=_value(COUNT, "the largest number of words")),
    _type("min-words", "the output has at least this many words", "`word-count` (min)", negatable=False,
          value=_value(COUNT, "the smallest number of words")),
    _type("max-chars", "the output has at most this many characters", "`javascript` (`output.length <= N`)",
          negatable=False, value=_value(COUNT, "the largest number of characters")),
    _type("levenshtein", "the edit distance to the text is at most the threshold", "levenshtein",
          value=_value({"type": "string"}, "the expected text"),
          threshold=AssertionField({**COUNT, "default": 5}, False, "the largest edit distance that passes")),
    _type("similar", "MiniLM cosine similarity to the text (the best of a list) reaches the threshold", "similar",
          value=_value(TEXT_OR_TEXTS, "the expected text, or a list of acceptable texts"),
          threshold=AssertionField(_share(0.8), False, "the smallest cosine that passes")),
    _type("rouge-n", "ROUGE-N F-measure against the text (the best of a list) reaches the threshold", "rouge-n",
          value=_value(TEXT_OR_TEXTS, "the reference text, or a list of references"),
          threshold=AssertionField(_share(0.75), False, "the smallest ROUGE F-measure (0-1) that passes"),
          n=AssertionField({"type": "integer", "enum": [1, 2], "default": 1}, False, "1 = unigrams, 2 = bigrams")),
    _type("bleu", "sentence BLEU (sacrebleu, divided by 100) against the text(s) reaches the threshold", "bleu",
          value=_value(TEXT_OR_TEXTS, "the reference text, or a list of references"),
          threshold=AssertionField(_share(0.5), False, "the smallest BLEU (0-1) that passes")),
    _type("latency", "the output took at most this many milliseconds to generate", "latency", negatable=False,
          threshold=AssertionField({"type": "number", "exclusiveMinimum": 0}, True, "the most milliseconds")),
    _type("scorer", "a registered scorer's value on the output lies within min and max",
          "`javascript`, `python` (as a plugin scorer)", negatable=False, scorer_params=True,
          name=AssertionField(TEXT, True, "a scorer's name ('evaltune scorers list'); other keys are its parameters"),
          min=AssertionField({"type": "number"}, False, "the smallest value that passes"),
          max=AssertionField({"type": "number"}, False, "the largest value that passes")),
    _type("llm-rubric", "the judge model grades the output on the rubric from 1 to scale (G-Eval); the score, "
          "scaled to 0-1, reaches the threshold", "llm-rubric",
          value=_value(TEXT, "the rubric, e.g. 'Answers in one sentence and names the city.'"),
          threshold=AssertionField(_share(0.5), False,
                                   "the smallest score that passes, on 0-1: (score - 1) / (scale - 1)"),
          scale=AssertionField({"type": "integer", "minimum": SMALLEST_SCALE, "maximum": LARGEST_SCALE,
                                "default": 5}, False, "the judge grades from 1 to this (one digit)")),
)

ASSERTION_TYPES: dict[str, AssertionType] = {t.name: t for t in _TYPES}

# promptfoo types without an equivalent here, and what to write instead (the README and the load-time refusal).
PROMPTFOO_INSTEAD: dict[str, str] = {
    "javascript": "a plugin scorer (entry point evaltune.scorers), then {type: scorer, name: ..., min: ...}",
    "python": "a plugin scorer (entry point evaltune.scorers), then {type: scorer, name: ..., min: ...}",
    "factuality": "llm-rubric, with the facts in the rubric",
    "model-graded-closedqa": "llm-rubric",
    "context-faithfulness": "{type: scorer, name: grounded_hallucination, max: ...} (the item needs a context)",
    "perplexity": "{type: scorer, name: perplexity, max: ...}",
    "cost": "none: no prices are recorded; each output's token counts and latency are",
    "webhook": "none: suites stay data; a plugin scorer can call a service",
}


def assertion_labels() -> list[str]:
    """Every type name a suite may write, ``not-`` forms included."""
    return [label for kind in ASSERTION_TYPES.values() for label in kind.labels]


def _fields_cell(kind: AssertionType) -> str:
    cells = []
    for key, field in kind.fields.items():
        if key in ("weight", "metric"):
            continue
        default = f" = {field.default}" if field.default is not None else ""
        cells.append(f"`{key}`{default}" if field.required else f"`{key}`{default} (optional)")
    if kind.scorer_params:
        cells.append("the scorer's parameters")
    return ", ".join(cells) or "-"


def assertion_table_markdown() -> str:
    """The README's table: each type, whether it has a not- form, its fields, and promptfoo's name for it, then
    the promptfoo types we do not have with what to use instead."""
    lines = ["| type | not- form | fields | checks that | promptfoo |", "|---|---|---|---|---|"]
    for kind in ASSERTION_TYPES.values():
        negated = f"`not-{kind.name}`" if kind.negatable else "-"
        promptfoo = kind.promptfoo if "`" in kind.promptfoo else f"`{kind.promptfoo}`"
        lines.append(f"| `{kind.name}` | {negated} | {_fields_cell(kind)} | {kind.description} | {promptfoo} |")
    lines += ["", "| promptfoo type | in evaltune |", "|---|---|"]
    lines += [f"| `{name}` | {_as_code(instead)} |" for name, instead in PROMPTFOO_INSTEAD.items()]
    return "\n".join(lines) + "\n"


def _as_code(text: str) -> str:
    """Markdown code spans around the YAML and the type names in a line of ``PROMPTFOO_INSTEAD``."""
    text = re.sub(r"(\{[^}]*\})", r"`\1`", text)
    return re.sub(r"^(llm-rubric)\b", r"`\1`", text)
