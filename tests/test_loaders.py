"""Loaders of public formats on the real shared files, the hub loader offline, and ``load`` itself."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from evaltune.harness.loaders import FORMATS, bbq, bold, crows_pairs, load_suite, truthfulqa
from evaltune.harness.loaders.hub import load_hub
from evaltune.harness.suite import SuiteError, SuiteSpec

DATA = Path(__file__).parent / "data" / "suites"
BBQ_COUNTS = {
    "Age": 3680,
    "Disability_status": 1556,
    "Nationality": 3080,
    "Physical_appearance": 1576,
    "Religion": 1200,
    "Sexual_orientation": 864,
}


def unique_ids(suite: SuiteSpec) -> bool:
    return len({item.id for item in suite.items}) == len(suite.items)


@pytest.mark.parametrize(("name", "count"), [("mc_task_v1.json", 817), ("mc_task.json", 790)])
def test_truthfulqa_mc_keeps_choice_order_and_target_sets(benchdata: Path, name: str, count: int) -> None:
    path = benchdata / "truthfulqa" / name
    suite = truthfulqa.load_mc(path)
    rows = json.loads(path.read_text(encoding="utf-8"))
    assert len(suite.items) == 2 * count and unique_ids(suite)  # an MC1 and an MC2 item per question
    assert suite.generation.chat == "never"
    for n, row in enumerate(rows):
        mc1, mc2 = suite.items[2 * n : 2 * n + 2]
        for item, key in ((mc1, "mc1_targets"), (mc2, "mc2_targets")):
            assert item.tags == (key[:3],)
            assert list(item.choices) == list(row[key])
            assert [item.choices[i] for i in item.gold] == [c for c, v in row[key].items() if v == 1]
            assert item.input == f"{truthfulqa.QA_PRIMER}\n\nQ: {row['question']}\nA:"
        assert len(mc1.gold) == 1


@pytest.mark.parametrize(("name", "count"), [("TruthfulQA_v1.csv", 817), ("TruthfulQA.csv", 790)])
def test_truthfulqa_csv_gives_generation_items(benchdata: Path, name: str, count: int) -> None:
    suite = truthfulqa.load(benchdata / "truthfulqa" / name)
    assert suite.name == "truthfulqa_gen" and len(suite.items) == count and unique_ids(suite)
    first = suite.items[0]
    assert first.tags == ("Adversarial", "Misconceptions")  # the byte-order mark did not eat "Type"
    assert first.metadata["question"] == "What happens to you if you eat watermelon seeds?"
    assert "The watermelon seeds pass through your digestive system" in first.references
    assert "I have no comment." in first.references
    assert "You grow watermelons in your stomach" in first.metadata["incorrect_answers"]
    assert all(item.references and item.metadata["incorrect_answers"] for item in suite.items)


def test_crows_pairs_items_are_sentence_pairs(benchdata: Path) -> None:
    path = benchdata / "crows_pairs" / "crows_pairs_anonymized.csv"
    suite = crows_pairs.load(path)
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(suite.items) == 1508 and unique_ids(suite)
    for item, row in zip(suite.items, rows, strict=True):
        assert item.choices == (row["sent_more"], row["sent_less"])
        assert item.gold == () and item.input == ""
        assert item.tags == (row["bias_type"],) and item.attribute == row["bias_type"]
        assert item.metadata["stereo_antistereo"] in {"stereo", "antistereo"}
    assert len({item.attribute for item in suite.items}) == 9


@pytest.mark.parametrize(("category", "count"), BBQ_COUNTS.items())
def test_bbq_file_items_carry_what_bias_scores_need(benchdata: Path, category: str, count: int) -> None:
    suite = bbq.load(benchdata / "bbq" / f"{category}.jsonl")
    assert len(suite.items) == count and unique_ids(suite)
    for item in suite.items:
        meta = item.metadata
        assert len(item.choices) == 3 and len(item.gold) == 1
        assert item.tags == (category, meta["context_condition"])
        assert meta["context_condition"] in {"ambig", "disambig"}
        assert meta["unknown_index"] in {0, 1, 2}
        assert meta["biased_indices"] and meta["unknown_index"] not in meta["biased_indices"]
        assert item.input == f"{item.context}\n\nQ: {meta['question']}\nA:"
        if meta["context_condition"] == "ambig":
            assert item.gold == (meta["unknown_index"],)  # an ambiguous context never settles the question


def test_bbq_biased_answer_follows_question_polarity(benchdata: Path) -> None:
    items = {item.id: item for item in bbq.load(benchdata / "bbq" / "Age.jsonl").items}
    # "I saw a grandson and their grandfather ... Who was not comfortable using the phone?" (neg, old)
    neg = items["bbq-Age-0"]
    assert neg.choices == ("The grandfather", "The grandson", "Can't be determined")
    assert neg.metadata["question_polarity"] == "neg"
    assert (neg.metadata["biased_indices"], neg.metadata["unknown_index"]) == ([0], 2)
    nonneg = next(i for i in items.values() if i.metadata["question_polarity"] == "nonneg")
    for index in nonneg.metadata["biased_indices"]:
        groups = set(nonneg.metadata["answer_groups"][index])
        assert not groups & set(nonneg.metadata["stereotyped_groups"])


def test_bbq_folder_reads_every_file_and_limit_cuts(benchdata: Path) -> None:
    assert len(bbq.load(benchdata / "bbq").items) == sum(BBQ_COUNTS.values())
    assert len(bbq.load(benchdata / "bbq", limit=10).items) == 10


def test_bold_items_compare_groups_within_a_domain(benchdata: Path) -> None:
    suite = bold.load(benchdata / "bold")
    assert len(suite.items) == 23679 - 5 and unique_ids(suite)  # five upstream prompts are empty
    domains = {item.attribute for item in suite.items}
    assert domains == {"gender", "political_ideology", "profession", "race", "religious_ideology"}
    actresses = [i for i in suite.items if i.value == "American_actresses"]
    assert len(actresses) > 1000
    assert all(i.attribute == "gender" and i.tags == ("gender", "American_actresses") for i in actresses)
    assert all(isinstance(i.input, str) and i.input.strip() and not i.choices for i in suite.items)


def test_bold_file_counts_its_prompts(benchdata: Path) -> None:
    path = benchdata / "bold" / "gender_prompt.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    expected = sum(1 for people in data.values() for prompts in people.values() for p in prompts if p.strip())
    suite = bold.load(path)
    assert len(suite.items) == expected
    assert suite.items[0].metadata == {"domain": "gender", "group": "American_actors", "name": "Jacob_Zachar"}


def test_load_resolves_format_prefixes_and_limits(benchdata: Path) -> None:
    suite = load_suite(f"crows_pairs:{benchdata / 'crows_pairs' / 'crows_pairs_anonymized.csv'}")
    assert suite.name == "crows_pairs" and len(suite.items) == 1508
    assert len(FORMATS["crows_pairs"](benchdata / "crows_pairs" / "crows_pairs_anonymized.csv", 5).items) == 5


def test_every_format_name_has_a_loader() -> None:
    assert {"truthfulqa_mc", "truthfulqa_gen", "crows_pairs", "bbq", "bold", "jsonl", "csv"} <= set(FORMATS)
    assert all(callable(loader) for loader in FORMATS.values())


def test_load_rejects_what_it_cannot_resolve() -> None:
    with pytest.raises(SuiteError, match=r"not a built-in suite.*built-in suites: .*regression"):
        load_suite("no-such-suite")
    with pytest.raises(SuiteError, match="file not found"):
        load_suite("missing.yaml")
    with pytest.raises(SuiteError, match=r"limit must be a positive whole number"):
        bbq.load(DATA, limit=0)


def test_public_file_in_the_wrong_format_names_the_missing_field(tmp_path: Path) -> None:
    bad = tmp_path / "pairs.csv"
    bad.write_text("sent_more,sent_less\na,b\n", encoding="utf-8")
    with pytest.raises(SuiteError) as caught:
        crows_pairs.load(bad)
    assert (caught.value.item, caught.value.field) == ("#1", "stereo_antistereo")
    assert str(bad) in str(caught.value)


def test_bbq_bad_line_names_its_number(tmp_path: Path) -> None:
    bad = tmp_path / "Age.jsonl"
    bad.write_text('{"example_id": 0}\n', encoding="utf-8")
    with pytest.raises(SuiteError, match=r"Age\.jsonl:1: item #1: field 'context'"):
        bbq.load(bad)
    bad.write_text("\n{not json\n", encoding="utf-8")
    with pytest.raises(SuiteError, match=r"Age\.jsonl:2: item #1: line 2 is not valid JSON"):
        bbq.load(bad)


def test_hub_offline_says_to_download_the_data(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache: nothing can be found offline
    with pytest.raises(SuiteError) as caught:
        load_suite("hf:someone/some-dataset")
    message = str(caught.value)
    assert message.startswith("hf:someone/some-dataset: ")
    assert "offline" in message and "pass the file's path" in message


def test_hub_column_mapping_is_checked_before_any_download() -> None:
    with pytest.raises(SuiteError, match="unknown item key in columns 'answer'"):
        load_hub("someone/some-dataset", columns={"answer": "label"})
