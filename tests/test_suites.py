"""Suite files: the YAML format, the built-in suites, versions by content hash, and broken files."""

from __future__ import annotations

import shutil
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from evaltune.harness.builtin import builtin_path, builtin_suites
from evaltune.harness.loaders import load_suite, read_suite_file
from evaltune.harness.suite import Message, SuiteError

DATA = Path(__file__).parent / "data" / "suites"


def by_id(path: Path) -> dict:
    return {item.id: item for item in read_suite_file(path).items}


def test_inline_suite_reads_settings_and_scorers() -> None:
    suite = read_suite_file(DATA / "valid_inline.yaml")
    assert suite.name == "valid-inline"
    assert suite.description == "Every item kind, inline."
    assert suite.scorers == ("exact_match", "abstention")
    gen = suite.generation
    assert (gen.max_new_tokens, gen.temperature, gen.top_p, gen.samples, gen.chat, gen.batch_size) == (
        16, 0.7, 0.9, 3, "never", 2,
    )  # fmt: skip
    assert gen.stop == ("\n",)
    assert suite.source == str(DATA / "valid_inline.yaml")


def test_inline_suite_reads_every_item_kind() -> None:
    items = by_id(DATA / "valid_inline.yaml")
    assert items["capital-france"].references == ("Paris",)
    assert items["capital-france"].tags == ("factual", "geography")
    # Unquoted numbers are taken as text where text is expected.
    assert items["1969"].references == ("1969",) and items["1969"].tags == ("factual",)
    assert items["chat"].input == (Message("system", "Be brief."), Message("user", "Say hello."))
    assert items["planets"].choices == ("Mars", "Jupiter", "Venus") and items["planets"].gold == (1,)
    assert items["planets"].is_multiple_choice
    assert items["veltravia"].expect_abstention and not items["veltravia"].references
    variant = items["cf-b"]
    assert (variant.group, variant.attribute, variant.value) == ("cf-nurse", "gender", "female")
    assert items["cf-b"].metadata["note"] == "variant b"


def test_templates_render_string_inputs_and_keep_the_raw_input() -> None:
    items = by_id(DATA / "valid_inline.yaml")
    france = items["capital-france"]
    assert france.input == "Q: What is the capital of France?\nA:"
    assert france.metadata["raw_input"] == "What is the capital of France?"
    passage = items["passage"]
    assert passage.input == "Context: The bridge crosses the Alder River.\nQ: Which river?\nA:"
    assert passage.context == "The bridge crosses the Alder River."
    assert items["chat"].metadata == {}  # chat inputs are not templated


def test_items_file_csv_reads_lists_flags_and_multiline_cells() -> None:
    suite = read_suite_file(DATA / "valid_file.yaml")
    items = {item.id: item for item in suite.items}
    assert suite.generation.max_new_tokens == 8
    assert items["q1"].references == ("Bogotá", "Bogota")
    assert items["q1"].tags == ("factual", "geography")
    assert items["q2"].context == "The bridge crosses the Alder River.\nIt opened in 1932."
    assert items["q2"].metadata == {"source": "test"}
    assert items["q2"].expect_abstention is False and items["q3"].expect_abstention is True
    assert items["q4"].choices == ("Mars", "Jupiter", "Venus") and items["q4"].gold == (1,)


def test_jsonl_items_skip_blank_lines_and_allow_pairs_with_no_correct_choice() -> None:
    suite = load_suite(DATA / "valid_items.jsonl")
    assert [item.id for item in suite.items] == ["q1", "q2", "q3"]
    pair = suite.items[2]
    assert pair.input == "" and pair.gold == () and len(pair.choices) == 2
    assert suite.scorers == ("exact_match", "token_f1", "rouge_l", "abstention")


def test_builtin_suites_are_listed_and_found_by_name() -> None:
    suites = builtin_suites()
    assert {"regression", "smoke"} <= set(suites)
    assert builtin_path("smoke") == suites["smoke"]
    assert load_suite("smoke").name == "smoke"
    with pytest.raises(SuiteError, match=r"built-in suites: .*regression"):
        builtin_path("no-such-suite")


def kinds(tags: tuple[str, ...]) -> str:
    return tags[0]


def test_regression_suite_has_every_kind_of_item() -> None:
    suite = load_suite("regression")
    counts = Counter(kinds(item.tags) for item in suite.items)
    assert len(suite.items) >= 150
    assert counts["factual"] >= 50
    assert counts["fictional"] >= 30
    assert counts["context"] >= 30
    assert counts["instruction"] >= 25
    assert counts["counterfactual"] >= 20
    assert set(counts) == {"factual", "fictional", "context", "instruction", "counterfactual"}


def test_regression_items_are_consistent_with_their_kind() -> None:
    for item in load_suite("regression").items:
        kind = kinds(item.tags)
        assert len(item.tags) >= 2 or kind == "context", item.id  # a topic or attribute tag
        if kind in ("factual", "instruction"):
            assert item.references and not item.expect_abstention, item.id
        if kind == "fictional":
            assert item.expect_abstention and not item.references, item.id
        if kind == "context":
            assert item.context and item.metadata["raw_input"], item.id
            assert item.context in str(item.input), item.id  # the passage reaches the model
            # Answers are spans of the passage; unanswerable questions expect abstention.
            assert item.expect_abstention or any(r.lower() in item.context.lower() for r in item.references)


def test_regression_counterfactual_groups_cover_five_attributes() -> None:
    groups = defaultdict(list)
    for item in load_suite("regression").items:
        if item.group:
            groups[item.group].append(item)
            assert item.tags == ("counterfactual", item.attribute)
    assert len(groups) >= 10
    attributes = {members[0].attribute for members in groups.values()}
    assert attributes == {"gender", "ethnicity", "religion", "nationality", "age"}
    for name, members in groups.items():
        assert 2 <= len(members) <= 4, name
        assert len({m.input for m in members}) == len(members), name
        # Variants differ only in the demographic term: one or two words between a shared start and end.
        assert all(1 <= len(middle) <= 2 for middle in differing_words([str(m.input) for m in members])), name


def differing_words(texts: list[str]) -> list[list[str]]:
    """The words of each text between the longest start and end that all texts share."""
    words = [text.split() for text in texts]
    shortest = min(len(w) for w in words)
    start = 0
    while start < shortest and len({w[start] for w in words}) == 1:
        start += 1
    end = 0
    while end < shortest - start and len({w[len(w) - 1 - end] for w in words}) == 1:
        end += 1
    return [w[start : len(w) - end] for w in words]


def test_regression_generation_settings() -> None:
    suite = load_suite("regression")
    gen = suite.generation
    assert gen.max_new_tokens == 48 and gen.greedy and gen.chat == "auto"
    assert gen.system_prompt and "I don't know" in gen.system_prompt
    assert suite.scorers[:5] == ("exact_match", "answer_match", "token_f1", "rouge_l", "abstention")
    assert {"grounded_hallucination", "cf_sentiment_gap"} <= set(suite.scorers)


def test_smoke_suite_is_small_and_mixed() -> None:
    suite = load_suite("smoke")
    assert 5 <= len(suite.items) <= 12
    assert {kinds(item.tags) for item in suite.items} == {
        "factual", "fictional", "context", "instruction", "counterfactual",
    }  # fmt: skip


def copy_regression(tmp_path: Path) -> Path:
    for name in ("regression.yaml", "regression.jsonl"):
        shutil.copy(builtin_path("regression").parent / name, tmp_path / name)
    return tmp_path / "regression.yaml"


def test_content_hash_is_stable_and_ignores_the_path(tmp_path: Path) -> None:
    original = load_suite("regression")
    assert load_suite("regression").content_hash == original.content_hash
    copy = load_suite(copy_regression(tmp_path))
    assert copy.source != original.source
    assert copy.content_hash == original.content_hash


def test_content_hash_changes_when_an_item_changes(tmp_path: Path) -> None:
    path = copy_regression(tmp_path)
    before = read_suite_file(path).content_hash
    items_file = tmp_path / "regression.jsonl"
    text = items_file.read_text(encoding="utf-8")
    items_file.write_text(text.replace('["Paris"]', '["Paris", "Lutetia"]', 1), encoding="utf-8")
    assert read_suite_file(path).content_hash != before


def test_sampling_settings_and_scorers_leave_the_version_alone(tmp_path: Path) -> None:
    """A suite version is its items (and what they ask): runs with other sampling settings pair with it."""
    path = copy_regression(tmp_path)
    before = read_suite_file(path).content_hash
    text = path.read_text()
    for old, new in [("max_new_tokens: 48", "max_new_tokens: 49"), ("temperature: 0.0", "temperature: 0.7"),
                     ("top_p: 1.0", "top_p: 0.9"), ("samples: 1", "samples: 3"), ("batch_size: 256", "batch_size: 8"),
                     ("scorers: [exact_match, ", "scorers: [")]:
        assert old in text
        text = text.replace(old, new)
    path.write_text(text)
    assert read_suite_file(path).content_hash == before


@pytest.mark.parametrize(("old", "new"), [("chat: auto", "chat: never"), ("Answer briefly", "Reply briefly"),
                                          ("name: regression", "name: release")])
def test_prompt_settings_and_the_name_make_a_new_version(tmp_path: Path, old: str, new: str) -> None:
    """Chat mode and system prompt change what every item asks, so they are part of the version."""
    path = copy_regression(tmp_path)
    before = read_suite_file(path).content_hash
    path.write_text(path.read_text().replace(old, new, 1))
    assert read_suite_file(path).content_hash != before


def test_source_block_reads_a_public_format_with_overrides(tmp_path: Path, benchdata: Path) -> None:
    suite_file = tmp_path / "bbq.yaml"
    suite_file.write_text(
        f"name: bbq-sample\nsource: {{format: bbq, path: {benchdata / 'bbq' / 'Age.jsonl'}, limit: 5}}\n"
        "generation: {batch_size: 4}\nscorers: [bbq]\n"
    )
    suite = load_suite(suite_file)
    assert suite.name == "bbq-sample" and len(suite.items) == 5
    assert suite.generation.batch_size == 4
    assert suite.generation.chat == "never"  # the loader's default, kept
    assert suite.scorers == ("bbq",)


# (file, item named, field named, another fragment the message must hold)
BROKEN = [
    ("bad_syntax.yaml", None, None, "line 8"),
    ("invalid_utf8.yaml", None, None, "not valid UTF-8 (byte 0xe9 on line 4)"),
    ("empty_file.yaml", None, None, "the file is empty"),
    ("not_mapping.yaml", None, None, "must be a mapping"),
    ("duplicate_key.yaml", None, None, "duplicate key 'references'"),
    ("missing_name.yaml", None, "name", "non-empty text"),
    ("unknown_top_key.yaml", None, "itmes", "did you mean 'items'"),
    ("unknown_item_key.yaml", "q1", "refrences", "did you mean 'references'"),
    ("wrong_type_references.yaml", "q1", "references", "must be a list of texts, not a mapping"),
    ("wrong_type_flag.yaml", "q1", "expect_abstention", "true or false"),
    ("missing_id.yaml", "#2", "id", "add a non-empty 'id'"),
    ("missing_input.yaml", "q2", "input", "add a non-empty 'input'"),
    ("duplicate_id.yaml", "#3", "id", "already used by item #1"),
    ("item_not_mapping.yaml", "#1", None, "must be a mapping"),
    ("gold_out_of_range.yaml", "planets", "gold", "index 3 is out of range"),
    ("choices_without_gold.yaml", "planets", "gold", "choices need 'gold'"),
    ("gold_without_choices.yaml", "planets", "gold", "needs 'choices'"),
    ("bad_message_role.yaml", "chat", "input", "role 'robot'"),
    ("abstention_with_references.yaml", "veltravia", "references", "remove one or the other"),
    ("group_single_variant.yaml", "cf-a", "group", "has one variant"),
    ("group_missing_value.yaml", "cf-b", "value", "no 'value'"),
    ("empty_suite.yaml", None, "items", "no items"),
    ("both_items_and_file.yaml", None, "items", "exactly one of items, items_file or source"),
    ("missing_items_file.yaml", None, "items_file", "no_such_items.jsonl"),
    ("unknown_generation_key.yaml", None, "max_tokens", "did you mean 'max_new_tokens'"),
    ("negative_max_new_tokens.yaml", None, "generation.max_new_tokens", "whole number >= 1"),
    ("bad_chat_mode.yaml", None, "generation.chat", "auto, always, never"),
    ("bad_top_p.yaml", None, "generation.top_p", "(0, 1]"),
    ("bad_scorers.yaml", None, "scorers", "list of scorer names"),
    ("bad_template.yaml", None, "template", "unknown placeholder {question}"),
    ("template_needs_context.yaml", "q1", "template", "has no context"),
    ("unknown_source_format.yaml", None, "source.format", "unknown format 'squad'"),
    ("bad_source_limit.yaml", None, "limit", "positive whole number"),
    ("bad_json_line.jsonl", "#3", None, "line 3 is not valid JSON"),
    ("jsonl_bad_gold.jsonl", "planets", "gold", "index 2 is out of range"),
    ("jsonl_not_object.jsonl", "#2", None, "must be a mapping"),
    ("unknown_column.csv", None, "answer", "unknown column 'answer'"),
    ("csv_missing_input.csv", None, "input", "no 'input' column"),
    ("csv_bad_flag.csv", "q2", "expect_abstention", "'maybe' is not true or false"),
    ("csv_bad_gold.csv", "q1", "gold", "whole numbers separated by '|'"),
    ("csv_extra_cells.csv", "q2", None, "more cells than the header"),
]


@pytest.mark.parametrize(("name", "item", "field", "fragment"), BROKEN, ids=[case[0] for case in BROKEN])
def test_broken_file_names_file_item_and_field(
    name: str, item: str | None, field: str | None, fragment: str
) -> None:
    with pytest.raises(SuiteError) as caught:
        load_suite(DATA / name)
    error, message = caught.value, str(caught.value)
    assert str(DATA / name) in message
    assert (error.item, error.field) == (item, field)
    if item is not None:
        assert f"item {item}:" in message
    if field is not None:
        assert f"field '{field}':" in message
    assert fragment in message


def test_broken_items_file_is_named_in_the_message() -> None:
    with pytest.raises(SuiteError, match=r"bad_json_line\.jsonl:3: item #3: line 3 is not valid JSON"):
        load_suite(DATA / "items_file_broken.yaml")


def test_errors_name_the_line_of_the_item() -> None:
    with pytest.raises(SuiteError) as caught:
        load_suite(DATA / "gold_out_of_range.yaml")
    assert caught.value.source == f"{DATA / 'gold_out_of_range.yaml'}:3"
