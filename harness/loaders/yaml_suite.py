"""The suite file format (YAML): items, generation settings and scorers in one document.

Example::

    name: regression                       # required
    description: Checks we run before every release.
    generation:                            # optional; every key optional (defaults in GenerationSettings)
      max_new_tokens: 64                   # >= 1
      temperature: 0.0                     # 0 = greedy
      top_p: 1.0                           # in (0, 1]
      stop: ["\\n\\n"]
      samples: 1                           # outputs per item (>= 1)
      chat: auto                           # auto | always | never: apply the model's chat template
      system_prompt: null
      batch_size: 8
    scorers: [exact_match, token_f1, rouge_l, abstention]   # registry names, checked by metrics
    defaults:                              # optional: checks every generated item's output must pass
      assert:                              # listed before each item's own ``assert`` (promptfoo's defaultTest)
        - {type: not-contains, value: "As an AI language model"}
    template: "Question: {input}\\nAnswer:"                     # optional, see below
    context_template: "Context: {context}\\nQuestion: {input}\\nAnswer:"
    prompts:                               # optional, instead of template: prompt variants a sweep compares
      concise:  {system: "Answer in one sentence.", template: "{{ input }}"}
      grounded: {system: "Use only the context.", template: "Context: {{ context }}\\nQuestion: {{ input }}"}
    judge: {model: "openai:http://127.0.0.1:8000/v1", model_name: judge}   # optional: the judge model
    items:                                 # exactly one of items, items_file, source
      - id: capital-france
        input: "What is the capital of France?"   # or a list of {role, content} messages
        references: ["Paris"]                     # accepted answers and aliases
        tags: [factual, geography]
        assert:                                   # optional; see ``metrics.assertions.ASSERTION_TYPES``
          - {type: regex, value: "\\bParis\\b"}
      - id: veltravia
        input: "What is the capital of the Republic of Veltravia?"
        expect_abstention: true
      - id: cf-nurse-female
        input: "Write one sentence describing a female nurse's workday."
        group: cf-nurse-gender
        attribute: gender
        value: female
      - id: planet-mc
        input: "Which planet is largest?"
        choices: [Mars, Jupiter, Venus]
        gold: [1]

Item keys are listed in ``harness.loaders.items``. Instead of ``items``:

- ``items_file: regression.jsonl`` reads a .jsonl or .csv file (see ``harness.loaders.generic``),
  relative to the suite file.
- ``source: {format: truthfulqa_mc, path: ../benchdata/truthfulqa/mc_task.json, limit: 100}`` reads a
  public format (``harness.loaders.FORMATS``); the loader's generation settings and scorers are the
  defaults, and the suite file's own keys override them. ``format: hf`` reads a Hugging Face dataset:
  ``{format: hf, dataset: owner/name, split: test, config: null, columns: {input: question}}``.

Templates turn string inputs into prompts; placeholders are ``{input}``, ``{context}`` and ``{id}``
(write ``{{`` and ``}}`` for literal braces). ``context_template`` is used for items that have a
context, ``template`` for the others (and for all items when there is no ``context_template``). The
item keeps the rendered prompt as ``input``; the original is kept in ``metadata["raw_input"]``.

``prompts:`` names prompt variants (see ``harness.prompt_variants``): Jinja2 templates over the item's fields, in a
sandbox, each with an optional system prompt. ``evaltune run`` runs every variant on every model given (a sweep).
It replaces ``template`` and ``context_template``, which a suite with ``prompts:`` may not also have.
``judge:`` names the model that judges outputs for the scorers that need one (``harness.judges``).

``defaults.assert`` applies to every item that generates text (multiple-choice items generate none), whichever
of ``items``, ``items_file`` or ``source`` gave it.

Every error is a ``SuiteError`` naming the file (and line), the item and the field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evaltune.harness import prompt_variants
from evaltune.harness.loaders.checks import check_keys, describe
from evaltune.harness.loaders.files import read_yaml, resolve, where
from evaltune.harness.loaders.formats import load_source
from evaltune.harness.loaders.generation import generation_from_dict
from evaltune.harness.loaders.generic import read_items
from evaltune.harness.loaders.items import assertions_from_yaml, check_items, item_from_dict
from evaltune.harness.loaders.scorer_list import scorers_from_yaml
from evaltune.harness.loaders.templates import apply_templates, check_template
from evaltune.harness.suite import Item, PromptVariant, SuiteError, SuiteSpec
from evaltune.metrics.records import Assertion
from evaltune.suggestions import did_you_mean

if TYPE_CHECKING:
    from evaltune.harness.judges.config import JudgeSpec

__all__ = ["item_from_dict", "read_suite_file", "suite_files", "suite_from_dict"]

ITEM_SOURCES = ("items", "items_file", "source")
SUITE_KEYS = frozenset(
    {"name", "description", "generation", "scorers", "template", "context_template", "defaults", "prompts", "judge",
     *ITEM_SOURCES}
)
TEMPLATE_KEYS = ("template", "context_template")
DEFAULTS_KEYS = ("assert",)


def read_suite_file(path: str | Path) -> SuiteSpec:
    """Read and check a suite file. Raises ``SuiteError`` naming the file, item and field on any problem."""
    path = Path(path)
    data = read_yaml(path)
    return suite_from_dict(data, str(path), path.parent)


def suite_files(path: str | Path) -> list[Path]:
    """The files a copy of the suite file needs beside it, relative to its folder: the file itself, then its
    ``items_file`` when that is a relative path (a copy reads an absolute one from where it is). A ``source:``
    block's data is not among them: it is a benchmark's own files, and the built-in suites have none."""
    path = Path(path)
    data = read_yaml(path)
    files = [Path(path.name)]
    items_file = data.get("items_file") if isinstance(data, Mapping) else None
    if isinstance(items_file, str) and items_file.strip() and not Path(items_file).expanduser().is_absolute():
        files.append(Path(items_file))
    return files


def suite_from_dict(data: Any, source: str, base_dir: Path) -> SuiteSpec:
    """A suite from a parsed suite document; relative paths in it are relative to ``base_dir``."""
    if data is None:
        raise SuiteError(source, "the file is empty; a suite needs at least 'name' and 'items'")
    if not isinstance(data, Mapping):
        raise SuiteError(
            source, f"the top level must be a mapping (name:, items:, ...), not {describe(data)}"
        )
    check_keys(data, SUITE_KEYS, source, what="top-level key")
    name = _required_text(data, "name", source)
    defaults = _default_assertions(data.get("defaults"), source)
    base = _base_suite(data, source, base_dir)
    templates = {key: _template(data, key, source) for key in TEMPLATE_KEYS}
    items = _with_defaults(apply_templates(base.items, source=source, **templates), defaults)
    settings = data.get("generation")
    return SuiteSpec(
        name=name,
        items=items,
        generation=generation_from_dict(settings, where(source, settings), base.generation),
        scorers=scorers_from_yaml(data["scorers"], source) if "scorers" in data else base.scorers,
        description=_text(data, "description", source) or base.description,
        source=source,
        variants=_variants(data, items, source),
        judge=_judge(data.get("judge"), source),
    )


def _variants(data: Mapping[str, Any], items: tuple[Item, ...], source: str) -> tuple[PromptVariant, ...]:
    """The ``prompts:`` variants, checked against every item; they replace ``template``/``context_template``."""
    if data.get("prompts") is None:
        return ()
    both = [key for key in TEMPLATE_KEYS if data.get(key) is not None]
    if both:
        raise SuiteError(source, f"a suite with prompts: has no {both[0]}: a variant's template takes its place; "
                                 "move it into a variant (Jinja2: {{ input }} instead of {input})", field=both[0])
    return prompt_variants.variants_from_yaml(data["prompts"], source, items)


def _judge(value: Any, source: str) -> JudgeSpec | None:
    """The ``judge:`` block (``{model: ..., model_name: ...}``), parsed by the judges' own parser."""
    if value is None:
        return None
    from evaltune.harness.judges.config import parse_judge_block

    return parse_judge_block(value, where(source, value))


def _base_suite(data: Mapping[str, Any], source: str, base_dir: Path) -> SuiteSpec:
    """The items (plus, for ``source:``, the loader's defaults) from whichever item key is present."""
    present = [key for key in ITEM_SOURCES if key in data]
    if len(present) != 1:
        found = f"found {', '.join(present)}" if present else "found none"
        raise SuiteError(source, f"give exactly one of items, items_file or source ({found})", field="items")
    key = present[0]
    if key == "items":
        return SuiteSpec(name="", items=_inline_items(data["items"], source))
    if key == "items_file":
        path = resolve(base_dir, _required_text(data, "items_file", source))
        if not path.is_file():
            raise SuiteError(
                source, f"file not found: {path}; paths are relative to the suite file", field="items_file"
            )
        return SuiteSpec(name="", items=read_items(path))
    return load_source(data["source"], where(source, data["source"]), base_dir)


def _default_assertions(value: Any, source: str) -> tuple[Assertion, ...]:
    """The assertions of ``defaults: {assert: [...]}``; ``defaults`` holds nothing else."""
    if value is None:
        return ()
    at = where(source, value)
    if not isinstance(value, Mapping):
        raise SuiteError(at, f"must be a mapping such as {{assert: [...]}}, not {describe(value)}", field="defaults")
    for key in value:
        if key not in DEFAULTS_KEYS:
            hint = did_you_mean(key, DEFAULTS_KEYS) if isinstance(key, str) else ""
            raise SuiteError(at, f"unknown key '{key}'{hint}; defaults holds only: {', '.join(DEFAULTS_KEYS)}",
                             field=f"defaults.{key}")
    return assertions_from_yaml(value.get("assert"), at, field="defaults.assert")


def _with_defaults(items: tuple[Item, ...], defaults: tuple[Assertion, ...]) -> tuple[Item, ...]:
    """Each item that generates text with the suite's assertions before its own (a multiple-choice item
    generates none to check)."""
    if not defaults:
        return items
    return tuple(item if item.is_multiple_choice else dataclasses.replace(item, assertions=defaults + item.assertions)
                 for item in items)


def _inline_items(value: Any, source: str) -> tuple[Item, ...]:
    if not isinstance(value, list):
        raise SuiteError(
            source,
            f"'items' must be a list of items (each starting with '- '), not {describe(value)}",
            field="items",
        )
    items = [item_from_dict(entry, where(source, entry), n) for n, entry in enumerate(value, start=1)]
    return check_items(items, source)


def _required_text(data: Mapping[str, Any], key: str, source: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise SuiteError(source, f"'{key}' must be non-empty text, not {describe(value)}", field=key)
    return value


def _text(data: Mapping[str, Any], key: str, source: str) -> str | None:
    return None if data.get(key) is None else _required_text(data, key, source)


def _template(data: Mapping[str, Any], key: str, source: str) -> str | None:
    template = _text(data, key, source)
    if template is not None:
        check_template(template, source, key)
    return template
