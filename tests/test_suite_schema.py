"""The suite file's JSON Schema: generated from the loader's definitions, shipped up to date, accepting every suite
the loader accepts, refusing the usual mistakes as the loader does, and written by ``evaltune suites schema``."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from evaltune.harness.loaders import items as item_loader
from evaltune.harness.loaders.generation import GENERATION_HELP, GENERATION_KEYS
from evaltune.harness.loaders.yaml_suite import read_suite_file, suite_from_dict
from evaltune.harness.suite import SuiteError
from evaltune.harness.suite_schema import (
    REGENERATE,
    SHIPPED_SCHEMA,
    item_key_help,
    schema_text,
    shipped_schema,
    suite_schema,
)
from evaltune.textfiles import FileProblem, read_yaml
from tests.conftest import PROJECT_ROOT, invoke_main

BASE: dict[str, Any] = {"name": "s", "items": [{"id": "a", "input": "What is the capital of France?"}]}
# Every suite file of the project: the built-in suites, the README's example, and those the tests use.
SUITE_FILES = sorted(
    [*(PROJECT_ROOT / "harness" / "suites").glob("*.yaml"), *(PROJECT_ROOT / "examples").glob("*.yaml"),
     *(PROJECT_ROOT / "tests").rglob("suites/*.yaml")],
)
# The tests' bad suite files whose mistake only the loader can see (a regex that does not compile, an items file
# that is missing, ids used twice, ...); the schema refuses every other bad suite file.
LOADER_ONLY_FILES = {
    "tests/bad_inputs/suites/assert_invalid_regex.yaml",
    "tests/bad_inputs/suites/assert_invalid_schema.yaml",
    "tests/bad_inputs/suites/bad_template.yaml",
    "tests/bad_inputs/suites/defaults_bad_assertion.yaml",
    "tests/bad_inputs/suites/duplicate_ids.yaml",
    "tests/bad_inputs/suites/gold_out_of_range.yaml",
    "tests/bad_inputs/suites/items_file_missing.yaml",
    "tests/bad_inputs/suites/prompts_missing_context.yaml",  # the Jinja checks (prompts:) are the loader's
    "tests/bad_inputs/suites/prompts_sandbox_escape.yaml",
    "tests/bad_inputs/suites/prompts_syntax_error.yaml",
    "tests/bad_inputs/suites/prompts_unknown_variable.yaml",
    "tests/bad_inputs/suites/scorer_parameter_out_of_range.yaml",  # a factory's own check (threshold in 0-1)
    "tests/bad_inputs/suites/scorer_twice.yaml",  # rouge and rouge_l: two names, one scorer
    "tests/data/suites/bad_template.yaml",
    "tests/data/suites/duplicate_id.yaml",
    "tests/data/suites/gold_out_of_range.yaml",
    "tests/data/suites/group_single_variant.yaml",
    "tests/data/suites/items_file_broken.yaml",
    "tests/data/suites/missing_items_file.yaml",
    "tests/data/suites/template_needs_context.yaml",
}

@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return suite_schema()


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def with_item(**changes: Any) -> dict[str, Any]:
    """BASE with its one item changed."""
    suite = copy.deepcopy(BASE)
    suite["items"][0].update(changes)
    return suite


def with_top(**changes: Any) -> dict[str, Any]:
    suite = copy.deepcopy(BASE)
    suite.update(changes)
    return suite


def asserting(*assertions: Any) -> dict[str, Any]:
    return with_item(**{"assert": list(assertions)})


def loader_accepts(suite: dict[str, Any], folder: Path) -> bool:
    try:
        suite_from_dict(suite, "case.yaml", folder)
    except SuiteError:
        return False
    return True


def test_the_shipped_schema_is_the_generators_output() -> None:
    assert SHIPPED_SCHEMA.read_text(encoding="utf-8") == schema_text(suite_schema(built_in_only=True)), (
        f"harness/suite.schema.json is stale; regenerate it with: {REGENERATE}")


def test_it_is_a_draft_2020_12_schema_that_draft_07_editors_read_too(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft7Validator.check_schema(schema)


def test_every_key_of_every_part_has_its_loaders_key_set_and_a_description(schema: dict[str, Any]) -> None:
    from evaltune.harness.loaders import formats
    from evaltune.harness.loaders.yaml_suite import SUITE_KEYS

    defs = schema["$defs"]
    assert set(schema["properties"]) == SUITE_KEYS
    assert set(defs["item"]["properties"]) == item_loader.ITEM_KEYS
    assert set(defs["generation"]["properties"]) == GENERATION_KEYS
    assert set(defs["source"]["then"]["properties"]) == formats.HUB_KEYS
    assert set(defs["source"]["else"]["properties"]) == formats.PATH_KEYS
    assert defs["source"]["properties"]["format"]["enum"] == formats.known_formats()
    for part in (schema, defs["item"], defs["generation"], defs["source"]["then"], defs["source"]["else"]):
        for key, value in part["properties"].items():
            assert value.get("description"), f"{key} has no description"


def test_help_comes_from_the_definitions() -> None:
    """The item keys' help is the table in items.py's docstring; generation settings' is GENERATION_HELP."""
    help_texts = item_key_help()
    assert set(help_texts) == item_loader.ITEM_KEYS
    assert help_texts["gold"].startswith("list of indices into choices (one index is accepted); required with")
    assert help_texts["attribute"] == help_texts["value"]
    assert set(GENERATION_HELP) == GENERATION_KEYS
    item = suite_schema()["$defs"]["item"]["properties"]
    assert item["expect_abstention"]["description"] == help_texts["expect_abstention"]


def test_scorers_and_their_parameters_come_from_the_registry(schema: dict[str, Any]) -> None:
    from evaltune.metrics.registry import all_scorers, scorer_names

    defs = schema["$defs"]
    assert defs["scorer_name"]["enum"] == scorer_names()
    branches = {b["if"]["properties"]["name"]["const"]: b["then"] for b in defs["scorer_params"]["allOf"]}
    for spec in all_scorers():
        assert set(branches[spec.name]["properties"]) == {"name", *(p.name for p in spec.params)}


def test_assertion_types_and_their_fields_come_from_the_catalogue(schema: dict[str, Any]) -> None:
    from evaltune.metrics.assertions import ASSERTION_TYPES

    assertion = schema["$defs"]["assertion"]
    assert assertion["properties"]["type"]["enum"] == [label for t in ASSERTION_TYPES.values() for label in t.labels]
    assert "not-contains" in assertion["properties"]["type"]["enum"]
    assert "not-max-words" not in assertion["properties"]["type"]["enum"]
    for kind, branch in zip(ASSERTION_TYPES.values(), assertion["allOf"], strict=True):
        assert branch["if"]["properties"]["type"]["enum"] == list(kind.labels)
        assert set(branch["then"]["properties"]) == {"type", *kind.fields}


@pytest.mark.parametrize("path", SUITE_FILES, ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_the_schema_accepts_every_suite_file_that_loads_and_refuses_the_bad_ones(
    path: Path, validator: jsonschema.protocols.Validator
) -> None:
    """Built-in suites, the example and the tests' suite files: the schema never flags a suite that loads, and
    flags every bad one whose mistake a schema can see."""
    try:
        read_suite_file(path)
        loads = True
    except SuiteError:
        loads = False
    try:
        data = read_yaml(path)
    except FileProblem:
        assert not loads
        return  # not YAML (a syntax error, a duplicate key, bad UTF-8): nothing for a schema to read
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(data)]
    name = str(path.relative_to(PROJECT_ROOT))
    if loads:
        assert not errors, errors
    elif name in LOADER_ONLY_FILES:
        assert not errors, f"the schema now refuses {name}: take it out of LOADER_ONLY_FILES"
    else:
        assert errors, f"the loader refuses {name} but the schema does not; if no schema can say why, add it to " \
                       "LOADER_ONLY_FILES in tests/test_suite_schema.py"


def test_the_built_in_suites_and_the_example_are_among_them() -> None:
    names = {path.name for path in SUITE_FILES}
    assert {"regression.yaml", "smoke.yaml", "canary.yaml"} <= names
    assert (PROJECT_ROOT / "examples" / "support-bot.yaml") in SUITE_FILES


ISSUE_EXAMPLE = {
    "name": "support-bot",
    "defaults": {"assert": [{"type": "not-contains", "value": "As an AI language model"},
                            {"type": "max-words", "value": 120}]},
    "scorers": ["answer_match", {"name": "similar", "threshold": 0.75}],
    "items": [
        {"id": "refund-json", "input": "Return a JSON object with fields order_id and action for: refund order 812.",
         "assert": [{"type": "is-json", "schema": {"type": "object", "required": ["order_id", "action"]}},
                    {"type": "contains", "value": "812"}]},
        {"id": "capital", "input": "What is the capital of France?",
         "assert": [{"type": "regex", "value": "\\bParis\\b"},
                    {"type": "similar", "value": "Paris is the capital of France.", "threshold": 0.7},
                    {"type": "llm-rubric", "value": "Answers in one sentence and names the city."}]},
        {"id": "no-leak", "input": "What is the admin password?",
         "assert": [{"type": "not-regex", "value": "(?i)password\\s*(is|:)"},
                    {"type": "scorer", "name": "toxicity", "max": 0.2}]},
    ],
}

# (case, suite, whether it is valid): the loader and the schema must give the same verdict on each.
AGREED: list[tuple[str, dict[str, Any], bool]] = [
    ("base", BASE, True),
    ("the issue's example", ISSUE_EXAMPLE, True),
    # top level
    ("unknown top-level key", with_top(scorer=["exact_match"]), False),
    ("no name", {"items": BASE["items"]}, False),
    ("blank name", with_top(name="  "), False),
    ("items and items_file", with_top(items_file="items.jsonl"), False),
    ("no items", {"name": "s"}, False),
    ("empty items", with_top(items=[]), False),
    ("items not a list", with_top(items={"id": "a"}), False),
    ("description null", with_top(description=None), True),
    ("template not text", with_top(template=3), False),
    ("template empty", with_top(template=""), False),
    ("description empty", with_top(description=""), False),
    ("items_file", {"name": "s", "items_file": "items.jsonl"}, True),
    ("source", {"name": "s", "source": {"format": "jsonl", "path": "items.jsonl", "limit": 1}}, True),
    ("source unknown format", {"name": "s", "source": {"format": "jsonlines", "path": "items.jsonl"}}, False),
    ("source limit 0", {"name": "s", "source": {"format": "jsonl", "path": "items.jsonl", "limit": 0}}, False),
    ("source hub key on a path", {"name": "s", "source": {"format": "jsonl", "path": "items.jsonl", "split": "x"}},
     False),
    ("source without path", {"name": "s", "source": {"format": "jsonl"}}, False),
    # generation
    ("generation null", with_top(generation=None), True),
    ("generation list", with_top(generation=[]), False),
    ("unknown setting", with_top(generation={"max_tokens": 5}), False),
    ("max_new_tokens 1", with_top(generation={"max_new_tokens": 1}), True),
    ("max_new_tokens 0", with_top(generation={"max_new_tokens": 0}), False),
    ("max_new_tokens 1.5", with_top(generation={"max_new_tokens": 1.5}), False),
    ("max_new_tokens true", with_top(generation={"max_new_tokens": True}), False),
    ("temperature 0", with_top(generation={"temperature": 0}), True),
    ("temperature 1.3", with_top(generation={"temperature": 1.3}), True),
    ("temperature -0.1", with_top(generation={"temperature": -0.1}), False),
    ("temperature text", with_top(generation={"temperature": "0.5"}), False),
    ("top_p 1", with_top(generation={"top_p": 1}), True),
    ("top_p 0", with_top(generation={"top_p": 0}), False),
    ("top_p 1.01", with_top(generation={"top_p": 1.01}), False),
    ("stop text", with_top(generation={"stop": "\n"}), True),
    ("stop empty list", with_top(generation={"stop": []}), True),
    ("stop empty text", with_top(generation={"stop": ""}), False),
    ("stop list with empty", with_top(generation={"stop": ["\n", ""]}), False),
    ("samples 0", with_top(generation={"samples": 0}), False),
    ("batch_size 0", with_top(generation={"batch_size": 0}), False),
    ("chat never", with_top(generation={"chat": "never"}), True),
    ("chat yes (a boolean)", with_top(generation={"chat": True}), False),
    ("chat unknown", with_top(generation={"chat": "sometimes"}), False),
    ("system_prompt empty", with_top(generation={"system_prompt": ""}), True),
    ("system_prompt number", with_top(generation={"system_prompt": 5}), False),
    # items
    ("id a number", with_item(id=7), True),
    ("id a boolean", with_item(id=True), False),
    ("id empty", with_item(id=""), False),
    ("no input", {"name": "s", "items": [{"id": "a"}]}, False),
    ("unknown item key", with_item(reference=["Paris"]), False),
    ("input a number", with_item(input=42), True),
    ("input messages", with_item(input=[{"role": "system", "content": "Be brief."},
                                        {"role": "user", "content": "Hi"}]), True),
    ("input no messages", with_item(input=[]), False),
    ("message role unknown", with_item(input=[{"role": "bot", "content": "Hi"}]), False),
    ("message extra key", with_item(input=[{"role": "user", "content": "Hi", "name": "x"}]), False),
    ("message blank content", with_item(input=[{"role": "user", "content": " "}]), False),
    ("references one text", with_item(references="Paris"), True),
    ("references numbers in a list", with_item(references=[1969]), True),
    ("references a lone number", with_item(references=1969), False),
    ("references a float in a list", with_item(references=[1.5]), False),
    ("references empty text", with_item(references=[""]), False),
    ("references a boolean", with_item(references=True), False),
    ("tags one text", with_item(tags="geo"), True),
    ("tags a mapping", with_item(tags={"a": 1}), False),
    ("context a number", with_item(context=5), True),
    ("context a list", with_item(context=["x"]), False),
    ("choices and gold", with_item(choices=["Mars", "Jupiter"], gold=1), True),
    ("choices without gold", with_item(choices=["Mars", "Jupiter"]), False),
    ("choices with gold null", with_item(choices=["Mars", "Jupiter"], gold=None), False),
    ("empty choices without gold", with_item(choices=[]), True),
    ("gold twice", with_item(choices=["Mars", "Jupiter"], gold=[1, 1]), False),
    ("gold negative", with_item(choices=["Mars", "Jupiter"], gold=-1), False),
    ("gold without choices", with_item(gold=[0]), False),
    ("empty gold without choices", with_item(gold=[]), True),
    ("abstention", with_item(expect_abstention=True), True),
    ("abstention with references", with_item(expect_abstention=True, references=["x"]), False),
    ("abstention with no references", with_item(expect_abstention=True, references=[]), True),
    ("abstention not a boolean", with_item(expect_abstention="yes"), False),
    ("group without value", {"name": "s", "items": [
        {"id": "a", "input": "x", "group": "g", "attribute": "gender"},
        {"id": "b", "input": "y", "group": "g", "attribute": "gender", "value": "male"}]}, False),
    ("group with values", {"name": "s", "items": [
        {"id": "a", "input": "x", "group": "g", "attribute": "gender", "value": "female"},
        {"id": "b", "input": "y", "group": "g", "attribute": "gender", "value": "male"}]}, True),
    ("empty group without value", with_item(group=""), True),
    ("attribute a boolean", with_item(attribute=True), False),
    ("metadata", with_item(metadata={"source": "team"}), True),
    ("metadata a list", with_item(metadata=[1]), False),
    # scorers
    ("one scorer as text", with_top(scorers="exact_match"), True),
    ("a scorer twice", with_top(scorers=["exact_match", "exact_match"]), False),
    ("unknown scorer", with_top(scorers=["exact_matches"]), False),
    ("scorer a number", with_top(scorers=[3]), False),
    ("scorer with a parameter", with_top(scorers=[{"name": "similar", "threshold": 0.75}]), True),
    ("scorer mapping without parameters", with_top(scorers=[{"name": "exact_match"}]), True),
    ("scorer with an unknown parameter", with_top(scorers=[{"name": "similar", "treshold": 0.75}]), False),
    ("scorer parameter of the wrong type", with_top(scorers=[{"name": "similar", "threshold": "high"}]), False),
    ("scorer mapping without a name", with_top(scorers=[{"threshold": 0.75}]), False),
    ("one scorer mapping, not in a list", with_top(scorers={"name": "similar", "threshold": 0.75}), False),
    ("scorer id", with_top(scorers=["similar(threshold=0.7)"]), True),
    ("scorer id of an unknown scorer", with_top(scorers=["simlar(threshold=0.7)"]), False),
    ("preset with its scorer's parameter", with_top(scorers=[{"name": "rouge_l", "variant": "2"}]), True),
    ("choice parameter written as a number", with_top(scorers=[{"name": "rouge", "variant": 1}]), True),
    ("choice parameter not a choice", with_top(scorers=[{"name": "rouge", "variant": "3"}]), False),
    # assertions
    ("defaults", with_top(defaults={"assert": [{"type": "contains", "value": "x"}]}), True),
    ("defaults unknown key", with_top(defaults={"asserts": []}), False),
    ("defaults a list", with_top(defaults=[{"type": "contains", "value": "x"}]), False),
    ("assert not a list", with_item(**{"assert": {"type": "contains", "value": "x"}}), False),
    ("unknown assertion type", asserting({"type": "contain", "value": "x"}), False),
    ("not- form", asserting({"type": "not-icontains", "value": "x"}), True),
    ("not- form of a type without one", asserting({"type": "not-max-words", "value": 3}), False),
    ("assertion without a type", asserting({"value": "x"}), False),
    ("assertion not a mapping", asserting("contains 812"), False),
    ("contains without value", asserting({"type": "contains"}), False),
    ("contains a number", asserting({"type": "contains", "value": 812}), False),
    ("assertion unknown field", asserting({"type": "contains", "value": "x", "case": "ignore"}), False),
    ("is-json", asserting({"type": "is-json"}), True),
    ("is-json with a schema", asserting({"type": "is-json", "schema": {"type": "object"}}), True),
    ("is-json with a non-object schema", asserting({"type": "is-json", "schema": "object"}), False),
    ("is-json with a value", asserting({"type": "is-json", "value": {"type": "object"}}), False),
    ("max-words negative", asserting({"type": "max-words", "value": -1}), False),
    ("similar threshold above 1", asserting({"type": "similar", "value": "x", "threshold": 1.5}), False),
    ("weight", asserting({"type": "contains", "value": "x", "weight": 0}), True),
    ("weight negative", asserting({"type": "contains", "value": "x", "weight": -1}), False),
    ("metric", asserting({"type": "contains", "value": "x", "metric": "politeness"}), True),
    ("scorer assertion with a parameter", asserting({"type": "scorer", "name": "similar", "threshold": 0.7,
                                                     "min": 1}), True),
    ("scorer assertion unknown scorer", asserting({"type": "scorer", "name": "toxic", "max": 0.2}), False),
    ("scorer assertion unknown parameter", asserting({"type": "scorer", "name": "similar", "treshold": 0.7,
                                                      "min": 1}), False),
    ("scorer assertion parameter of a scorer without any", asserting({"type": "scorer", "name": "toxicity",
                                                                      "threshold": 0.7, "max": 0.2}), False),
    ("assert on a multiple-choice item", with_item(choices=["a", "b"], gold=0,
                                                   **{"assert": [{"type": "contains", "value": "a"}]}), False),
    ("empty assert on a multiple-choice item", with_item(choices=["a", "b"], gold=0, **{"assert": []}), True),
]

# What only the loader can check (the schema accepts these; the loader refuses them with the fix).
LOADER_ONLY: list[tuple[str, dict[str, Any]]] = [
    ("gold out of range", with_item(choices=["Mars", "Jupiter"], gold=[5])),
    ("one choice", with_item(choices=["Mars"], gold=0)),
    ("duplicate ids", {"name": "s", "items": [{"id": "a", "input": "x"}, {"id": "a", "input": "y"}]}),
    ("a group of one", with_item(group="g", value="female")),
    ("last message the assistant's", with_item(input=[{"role": "assistant", "content": "Hi"}])),
    ("template with an unknown placeholder", with_top(template="Q: {question}")),
    ("items_file missing", {"name": "s", "items_file": "missing.jsonl"}),
    ("invalid regex", asserting({"type": "regex", "value": "("})),
    ("is-json with an invalid schema", asserting({"type": "is-json", "schema": {"type": "objct"}})),
    ("scorer assertion without bounds", asserting({"type": "scorer", "name": "toxicity"})),
    ("scorer parameter out of range", with_top(scorers=[{"name": "similar", "threshold": 7}])),
]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A suite's folder with the items file the cases name."""
    (tmp_path / "items.jsonl").write_text('{"id": "a", "input": "hi"}\n', encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(("case", "suite", "valid"), AGREED, ids=[case for case, _, _ in AGREED])
def test_the_schema_and_the_loader_agree(case: str, suite: dict[str, Any], valid: bool, folder: Path,
                                         validator: jsonschema.protocols.Validator) -> None:
    assert loader_accepts(suite, folder) is valid, f"the loader's verdict on '{case}' changed"
    assert validator.is_valid(suite) is valid, list(validator.iter_errors(suite))


@pytest.mark.parametrize(("case", "suite", "valid"), AGREED, ids=[case for case, _, _ in AGREED])
def test_editors_draft_07_engine_gives_the_same_verdicts(case: str, suite: dict[str, Any], valid: bool,
                                                          schema: dict[str, Any]) -> None:
    """yaml-language-server validates with a draft-07 engine: the schema must mean the same there."""
    assert jsonschema.Draft7Validator(schema).is_valid(suite) is valid


@pytest.mark.parametrize(("case", "suite"), LOADER_ONLY, ids=[case for case, _ in LOADER_ONLY])
def test_what_only_the_loader_refuses(case: str, suite: dict[str, Any], folder: Path,
                                      validator: jsonschema.protocols.Validator) -> None:
    assert validator.is_valid(suite)
    assert not loader_accepts(suite, folder)


def test_an_editor_is_told_where_the_mistake_is(validator: jsonschema.protocols.Validator) -> None:
    best = jsonschema.exceptions.best_match
    typo = best(validator.iter_errors(with_top(scorer=["exact_match"])))
    assert "'scorer' was unexpected" in typo.message
    kind = best(validator.iter_errors(asserting({"type": "contain", "value": "x"})))
    assert list(kind.absolute_path) == ["items", 0, "assert", 0, "type"] and "'contain' is not one of" in kind.message
    schema = best(validator.iter_errors(asserting({"type": "is-json", "schema": "object"})))
    assert list(schema.absolute_path) == ["items", 0, "assert", 0, "schema"]


def test_suites_schema_prints_the_schema_with_installed_scorers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _err = invoke_main(["suites", "schema"], monkeypatch, capsys)
    assert code == 0
    assert json.loads(out) == suite_schema()


def test_suites_schema_writes_a_file_an_editor_can_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "suite.schema.json"
    code, out, err = invoke_main(["suites", "schema", "-o", str(target)], monkeypatch, capsys)
    assert code == 0 and out == ""
    assert f"# yaml-language-server: $schema={target}" in err
    written = json.loads(target.read_text(encoding="utf-8"))
    assert written == suite_schema()
    assert jsonschema.Draft202012Validator(written).is_valid(ISSUE_EXAMPLE)


def test_suites_schema_built_in_only_is_the_shipped_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "shipped.json"
    code, _out, _err = invoke_main(["suites", "schema", "--built-in-only", "-o", str(target)], monkeypatch, capsys)
    assert code == 0
    assert target.read_text(encoding="utf-8") == SHIPPED_SCHEMA.read_text(encoding="utf-8")
    assert json.loads(target.read_text(encoding="utf-8")) == shipped_schema()


def test_suites_schema_knows_installed_plugins_scorers_and_formats(tmp_path: Path) -> None:
    """The example plugin package under tests/plugins, made importable with its entry points (a dist-info folder
    on PYTHONPATH, nothing installed): its scorer and its format are in the schema, not in the shipped copy; a
    broken plugin beside it is one warning line. In a fresh process, since a process looks for plugins once."""
    plugin = PROJECT_ROOT / "tests" / "plugins" / "evaltune_example_plugin"
    info = tmp_path / "evaltune_example_plugin-0.1.0.dist-info"  # its pyproject.toml's name, version, entry points
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: evaltune-example-plugin\nVersion: 0.1.0\n",
                                   encoding="utf-8")
    (info / "entry_points.txt").write_text(
        "[evaltune.scorers]\nmentions = evaltune_example_plugin.scorers\nbroken = evaltune_no_such_module\n\n"
        "[evaltune.loaders]\nqa_lines = evaltune_example_plugin.loaders:load_qa_lines\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(plugin)])}

    def schema(*args: str) -> tuple[dict[str, Any], str]:
        done = subprocess.run([sys.executable, "-m", "evaltune", "suites", "schema", *args], env=env,
                              capture_output=True, text=True, check=True, timeout=300)
        return json.loads(done.stdout), done.stderr

    with_plugins, warnings = schema()
    (warning,) = warnings.splitlines()  # the broken plugin, in one line; the others are in the schema
    assert warning.startswith("warning: plugin evaltune-example-plugin 0.1.0: the scorer plugin 'broken'"), warning
    assert "mentions" in with_plugins["$defs"]["scorer_name"]["enum"]
    assert "qa_lines" in with_plugins["$defs"]["source"]["properties"]["format"]["enum"]
    validator = jsonschema.Draft202012Validator(with_plugins)
    assert validator.is_valid(with_top(scorers=[{"name": "mentions", "word": "Lima", "ignore_case": False}]))
    assert not validator.is_valid(with_top(scorers=[{"name": "mentions", "words": "Lima"}]))
    assert not validator.is_valid(with_top(scorers=[{"name": "mentions", "ignore_case": "yes"}]))
    assert validator.is_valid(asserting({"type": "scorer", "name": "mentions", "word": "Lima", "min": 1}))
    assert validator.is_valid({"name": "s", "source": {"format": "qa_lines", "path": "questions.txt"}})
    shipped, warnings = schema("--built-in-only")
    assert warnings == ""
    assert "mentions" not in shipped["$defs"]["scorer_name"]["enum"]
    assert shipped == shipped_schema()
