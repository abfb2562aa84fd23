"""Prompt variants (a suite's ``prompts:``): Jinja2 in a sandbox over the item's fields, checked against every item
at load, and the suite each variant makes (``with_variant``), which is what the same suite written with
``template:`` and ``system_prompt`` would be."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from evaltune.harness.loaders import load_suite
from evaltune.harness.loaders.yaml_suite import suite_from_dict
from evaltune.harness.prompt_variants import DEFAULT_VARIANT, variant_names, with_variant
from evaltune.harness.suite import Item, Message, PromptVariant, SuiteError, SuiteSpec
from evaltune.harness.suite_schema import suite_schema
from tests.conftest import PROJECT_ROOT

VARIANTS = PROJECT_ROOT / "tests" / "data" / "suites" / "variants.yaml"
ITEMS: list[dict[str, Any]] = [
    {"id": "capital", "input": "What is the capital of France?", "references": ["Paris"], "tags": ["geo"],
     "metadata": {"topic": "places"}},
    {"id": "bridge", "input": "When did the bridge open?", "context": "The bridge opened in 1932.",
     "references": ["1932"], "metadata": {"topic": "history"}},
]


def suite(prompts: Any, items: list[dict[str, Any]] | None = None, **top: Any) -> dict[str, Any]:
    return {"name": "bot", "prompts": prompts, "items": items or ITEMS, **top}


def load(data: dict[str, Any]) -> SuiteSpec:
    return suite_from_dict(data, "bot.yaml", Path("."))


def refusal(data: dict[str, Any]) -> str:
    with pytest.raises(SuiteError) as error:
        load(data)
    return str(error.value)


def test_the_variants_load_in_file_order_with_their_system_prompts_and_templates() -> None:
    loaded = load_suite(VARIANTS)
    assert variant_names(loaded) == ("concise", "grounded")
    assert loaded.variants[0] == PromptVariant("concise", "Answer in one sentence.", "{{ input }}")
    assert loaded.items[0].input == "What is the capital of France?"  # the suite itself is not rendered


def test_a_variant_renders_every_field_of_the_item_and_keeps_the_raw_input() -> None:
    template = ("[{{ id }}] {% if context is defined %}{{ context }} {% endif %}Q: {{ input | upper }} "
                "refs={{ references | join('/') }} tags={{ tags | length }} topic={{ metadata.topic }}")
    loaded = load(suite({"full": {"system": "Be brief.", "template": template}}))
    made = with_variant(loaded, "full")
    assert [item.input for item in made.items] == [
        "[capital] Q: WHAT IS THE CAPITAL OF FRANCE? refs=Paris tags=1 topic=places",
        "[bridge] The bridge opened in 1932. Q: WHEN DID THE BRIDGE OPEN? refs=1932 tags=0 topic=history",
    ]
    assert made.items[0].metadata == {"topic": "places", "raw_input": "What is the capital of France?"}
    assert made.generation.system_prompt == "Be brief."
    assert (made.name, made.variants) == ("bot", ())


def test_each_variant_is_its_own_suite_version_and_a_system_only_variant_keeps_the_inputs() -> None:
    loaded = load(suite({"plain": {"template": "{{ input }}"}, "brief": {"system": "One sentence."},
                         "quoted": {"template": "Q: {{ input }}"}}))
    made = {name: with_variant(loaded, name) for name in variant_names(loaded)}
    assert len({m.content_hash for m in made.values()}) == 3
    assert made["brief"].items == loaded.items and made["brief"].generation.system_prompt == "One sentence."
    assert made["plain"].generation.system_prompt is None  # no system: the suite's own (none here)


def test_a_variant_is_the_suite_written_with_template_and_system_prompt(tmp_path: Path) -> None:
    """The sweep's cell and 'evaltune run' of a suite file written the old way are runs of one suite version."""
    loaded = load_suite(VARIANTS)
    data = yaml.safe_load(VARIANTS.read_text(encoding="utf-8"))
    del data["prompts"]
    data["generation"]["system_prompt"] = "Use only the context."
    data["template"] = "Question: {input}"
    data["context_template"] = "Context: {context}\n\nQuestion: {input}"
    written = tmp_path / "grounded.yaml"
    written.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert with_variant(loaded, "grounded").content_hash == load_suite(written).content_hash


def test_chat_inputs_are_left_as_they_are_and_get_the_system_prompt() -> None:
    chat = [{"id": "chat", "input": [{"role": "user", "content": "Hi"}]}]
    made = with_variant(load(suite({"v": {"system": "Be kind.", "template": "Q: {{ input }}"}}, chat)), "v")
    assert made.items[0].input == (Message("user", "Hi"),)
    assert made.generation.system_prompt == "Be kind."


def test_a_suite_without_prompts_has_one_variant_named_default() -> None:
    plain = SuiteSpec("s", (Item("a", "hi"),))
    assert variant_names(plain) == (DEFAULT_VARIANT,)
    assert with_variant(plain, DEFAULT_VARIANT) is plain
    with pytest.raises(SuiteError, match="no prompt variant 'concis' \\(did you mean 'concise'\\?\\)"):
        with_variant(load_suite(VARIANTS), "concis")


@pytest.mark.parametrize(("prompts", "words"), [
    ({"v": {"template": "Q: {{ input }"}}, ["field 'prompts.v.template'", "line 1 of the template"]),
    ({"v": {"template": "Q: {% for x in tags %}{{ input }}"}}, ["line 1 of the template", "endfor"]),
    ({"v": {"template": "Q: {{ inptu }}"}}, ["unknown variable 'inptu'", "did you mean 'input'"]),
    ({"v": {"template": "Q: {{ metadata.source }} {{ input }}"}}, ["item capital", "has no attribute 'source'"]),
    ({"v": {"template": "{{ context }}: {{ input }}"}}, ["item capital", "'context' is undefined",
                                                       "{% if context is defined %}"]),
    ({"v": {"template": "{{ input }} {{ ''.__class__.__mro__ }}"}}, ["item capital", "refused", "__class__"]),
    ({"v": {"template": "{{ input }} {{ input.__init__.__globals__ }}"}}, ["refused"]),
    ({"v": {"template": "{{ input }}{% set x = references.append('y') %}"}}, ["refused", "append"]),
    ({"v": {"template": "{{ input * 1000000 }}"}}, ["refused", "repeating text"]),
    ({"v": {"template": "{{ input }}{{ 10 ** 100000 }}"}}, ["refused", "exponent"]),
    ({"v": {"template": "{{ input | attr('__class__') }}"}}, ["refused"]),
    ({"v": {"template": "Hello"}}, ["never uses {{ input }}"]),
    ({"v": {"template": "{% if false %}{{ input }}{% endif %} "}}, ["item capital", "renders to an empty prompt"]),
    ({"v": {"sytem": "x", "template": "{{ input }}"}}, ["field 'prompts.v.sytem'", "did you mean 'system'"]),
    ({"v": {}}, ["field 'prompts.v'", "neither system nor template"]),
    ({"v": None}, ["field 'prompts.v'", "must be a mapping"]),
    ({"v": {"system": "", "template": "{{ input }}"}}, ["field 'prompts.v.system'", "non-empty text"]),
    ({"v": {"template": 3}}, ["field 'prompts.v.template'", "non-empty text"]),
    ({"two words": {"template": "{{ input }}"}}, ["field 'prompts'", "variant name 'two words'"]),
    ({"a@b": {"template": "{{ input }}"}}, ["variant name 'a@b'"]),
    ({}, ["field 'prompts'", "names no variant"]),
    (["concise"], ["field 'prompts'", "must be a mapping of variant names"]),
])
def test_a_bad_variant_is_refused_at_load_naming_the_field_and_the_item(prompts: Any, words: list[str]) -> None:
    message = refusal(suite(prompts))
    assert message.startswith("bot.yaml")
    for word in words:
        assert word in message


def test_prompts_take_the_place_of_the_templates() -> None:
    message = refusal(suite({"v": {"template": "{{ input }}"}}, template="Q: {input}"))
    assert "field 'template'" in message and "{{ input }} instead of {input}" in message
    assert load(suite(None)).variants == ()  # prompts: null is no variants


# The loader and the suite JSON Schema give the same verdict on prompts: (tests/test_suite_schema.py does this for
# every other key; the Jinja checks are the loader's alone).
SCHEMA_CASES: list[tuple[str, Any, bool]] = [
    ("two variants", {"a": {"system": "x", "template": "{{ input }}"}, "b": {"template": "Q: {{ input }}"}}, True),
    ("system only", {"a": {"system": "x"}}, True),
    ("template null and system", {"a": {"system": "x", "template": None}}, True),
    ("empty mapping", {}, False),
    ("neither key", {"a": {}}, False),
    ("both null", {"a": {"system": None, "template": None}}, False),
    ("unknown key", {"a": {"system": "x", "templat": "{{ input }}"}}, False),
    ("empty system", {"a": {"system": ""}}, False),
    ("template a number", {"a": {"template": 3}}, False),
    ("bad name", {"a b": {"system": "x"}}, False),
    ("a list", [{"system": "x"}], False),
    ("null", None, True),
]


@pytest.mark.parametrize(("case", "prompts", "valid"), SCHEMA_CASES, ids=[c for c, _, _ in SCHEMA_CASES])
def test_the_schema_and_the_loader_agree_on_prompts(case: str, prompts: Any, valid: bool) -> None:
    data = suite(prompts)
    try:
        load(data)
        loads = True
    except SuiteError:
        loads = False
    assert loads is valid
    assert jsonschema.Draft202012Validator(suite_schema()).is_valid(data) is valid
    assert jsonschema.Draft7Validator(suite_schema()).is_valid(data) is valid


@pytest.mark.parametrize(("judge", "valid"), [
    ({"model": "openai:http://127.0.0.1:8000/v1", "model_name": "judge"}, True),
    ({"model": "./judge-folder"}, True),
    ({"model": "openai:http://127.0.0.1:8000/v1", "model_nam": "judge"}, False),
    ({"model_name": "judge"}, False),
    ("openai:http://127.0.0.1:8000/v1", False),
])
def test_the_judge_block_is_read_by_the_judges_parser_and_described_in_the_schema(judge: Any, valid: bool) -> None:
    data = {"name": "bot", "judge": judge, "items": ITEMS}
    try:
        loaded = load(data)
        assert loaded.judge is not None and loaded.judge.model == judge["model"]
        loads = True
    except SuiteError as error:
        assert "field 'judge" in str(error)
        loads = False
    assert loads is valid
    assert jsonschema.Draft202012Validator(suite_schema()).is_valid(data) is valid



def test_one_run_of_a_suite_with_variants_names_its_variant(tiny_model_dir: Path, tmp_path: Path) -> None:
    """``evaluate`` (one run: the pytest plugin, the library) asks one way: the variant named, or a refusal."""
    from sqlalchemy import select

    from evaltune.db.engine import open_store
    from evaltune.db.evaluation import Generation
    from evaltune.errors import UserError
    from evaltune.evaluate import EvaluateRequest, evaluate

    url = f"sqlite:///{tmp_path / 'store.db'}"
    request = EvaluateRequest(suite=str(VARIANTS), model=str(tiny_model_dir), limit=2, store_url=url)
    with pytest.raises(UserError, match=r"has prompt variants \(concise, grounded\); one run asks one way"):
        evaluate(request, status=lambda line: None)
    done = evaluate(EvaluateRequest(**{**request.__dict__, "variant": "grounded"}), status=lambda line: None)
    store = open_store(url)
    try:
        with store.sessions.begin() as session:
            prompts = session.scalars(select(Generation.prompt).where(Generation.run_id == done.outcome.run_id))
            assert all("Use only the context." in prompt and "Question: " in prompt for prompt in prompts)
    finally:
        store.close()
