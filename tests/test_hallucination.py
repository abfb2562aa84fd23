"""Hallucination scorers: entities and numbers, context support, the combined score, self-consistency,
and the plumbing of the user-named NLI and judge models (tiny models built here, not accuracy)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from evaltune.metrics import detector
from evaltune.metrics.numbers import numbers_in
from evaltune.metrics.records import Example
from evaltune.metrics.registry import get_scorer
from evaltune.metrics.scorers import entities, hallucination
from evaltune.metrics.sentences import split_sentences

ROOT = Path(__file__).resolve().parent.parent
PASSAGE = (
    "The Harlow Bridge over the Ness River was completed in 1887. It was designed by the engineer "
    "Thomas Avery and is 412 metres long. Visitors must not climb the towers."
)


def example(output: str, context: str | None = PASSAGE, **fields: Any) -> Example:
    return Example(item_id="x", prompt="Tell me about the Harlow Bridge.", output=output, context=context, **fields)


def score(name: str, *examples: Example) -> list[Any]:
    return get_scorer(name).score_batch(list(examples))


# --- text: numbers and sentences ---


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("1,000 or 1000 or one thousand", [1000, 1000, 1000]),
        ("twelve, 12th, twelfth", [12, 12, 12]),
        ("1.2 million = 1,200,000", [1_200_000, 1_200_000]),
        ("35% or thirty-five percent", [35, 35]),
        ("every one of its 22 tenants", [22]),  # a lone "one" is a pronoun
        ("about a third", [1 / 3]),
        ("186 m high", [186]),  # "m" after a number is metres, not millions
    ],
)
def test_numbers_are_normalised(text: str, values: list[float]) -> None:
    assert numbers_in(text) == pytest.approx(values)


def test_sentences_split_without_breaking_abbreviations_or_decimals() -> None:
    text = "Dr. Smith paid $3.50 in the U.S. yesterday. He left! Did he? Yes.\n- a list item"
    assert split_sentences(text) == ["Dr. Smith paid $3.50 in the U.S. yesterday.", "He left!", "Did he?", "Yes.",
                                     "a list item"]


# --- unsupported_entities ---


def test_rule_based_fallback_finds_names_and_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(entities, "spacy_pipeline", lambda: None)
    text = "The Harlow Bridge is 412 metres long; Anna Kern saw twelve. Visitors came."
    found = {m.text for m in entities.rule_based_mentions(text)}
    assert found == {"Harlow Bridge", "412", "Anna Kern", "twelve"}  # a lone sentence-initial word is no entity
    [result] = score("unsupported_entities", example("Thomas Avery built it in 1897 with Anna Kern."))
    assert result.details["ner"] == "rules"
    assert {u["text"] for u in result.details["unsupported"]} == {"1897", "Anna Kern"}


@pytest.mark.parametrize("use_spacy", [True, False], ids=["spacy", "rules"])
def test_unsupported_entities_folds_accents_and_number_spellings(use_spacy: bool,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    if use_spacy:
        pytest.importorskip("spacy")
    else:
        monkeypatch.setattr(entities, "spacy_pipeline", lambda: None)
    context = "Karel Dvořák gave 1,000 clocks to the museum in Brno in 1956."
    faithful, swapped = score(
        "unsupported_entities",
        example("Karel Dvorak donated one thousand clocks in 1956.", context=context),
        example("Karel Novak donated 1,500 clocks in 1956.", context=context),
    )
    assert faithful.value == 0.0
    assert swapped.value is not None and swapped.value > 0
    assert any("1,500" in u["text"] for u in swapped.details["unsupported"])


def test_unsupported_entities_uses_references_and_needs_a_source() -> None:
    with_reference, without = score(
        "unsupported_entities",
        example("It was completed in 1887.", context=None, references=("Completed in 1887.",)),
        example("It was completed in 1887.", context=None),
    )
    assert with_reference.value == 0.0
    assert without.value is None and "context" in without.details["reason"]


# --- context_support and grounded_hallucination ---


def test_context_support_scores_each_sentence_against_the_calibrated_threshold() -> None:
    output = "The Harlow Bridge over the Ness River was finished in 1887. Penguins like ice."
    [result] = score("context_support", example(output))
    assert result.value == 0.5
    assert result.details["threshold"] == hallucination.SUPPORT_THRESHOLD
    supported = [s["supported"] for s in result.details["sentences"]]
    assert supported == [True, False]


def test_grounded_hallucination_flags_negations_and_entities_and_passes_restatements() -> None:
    restated, negated, swapped, no_source = score(
        "grounded_hallucination",
        example("The Harlow Bridge was completed in 1887 and designed by the engineer Thomas Avery."),
        example("Visitors are allowed to climb the towers of the Harlow Bridge."),
        example("The Harlow Bridge was designed by the engineer Thomas Telford in 1887."),
        example("Anything.", context=None),
    )
    assert restated.value < hallucination.DECISION_THRESHOLD and not restated.details["hallucinated"]
    assert negated.details["hallucinated"] and negated.details["signals"]["negation_flip"] == 1.0
    assert swapped.details["hallucinated"] and swapped.details["signals"]["unsupported_entities"] > 0
    assert set(restated.details["signals"]) == set(detector.SIGNALS)
    assert no_source.value is None
    metrics = get_scorer("grounded_hallucination").aggregate([], [restated, negated, swapped, no_source])
    assert [m.name for m in metrics] == ["grounded_hallucination", "grounded_hallucination_rate",
                                         "grounded_hallucination_not_applicable"]
    assert metrics[1].value == pytest.approx(2 / 3) and metrics[1].n == 3
    assert metrics[2].details["count"] == 1 and metrics[2].n == 4  # the item with no source is counted, not lost


# --- self_consistency ---


def test_self_consistency_needs_samples_and_rewards_agreement() -> None:
    output = "The bridge was completed in 1887. It was designed by Thomas Avery."
    agreeing = ("Completed in 1887, the bridge was designed by Thomas Avery.",
                "Thomas Avery designed it; it opened in 1887.")
    differing = ("Penguins live in Antarctica.", "The recipe needs two eggs and some flour.")
    alone, agreed, differed = score(
        "self_consistency", example(output), example(output, samples=agreeing), example(output, samples=differing)
    )
    assert alone.value is None and "samples" in alone.details["reason"]
    assert 0.0 <= differed.value < agreed.value <= 1.0
    assert agreed.details["n_samples"] == 2 and len(agreed.details["sentences"]) == 2


def test_scorer_modules_import_no_heavy_library() -> None:
    code = ("import sys; from evaltune.metrics.registry import all_scorers; all_scorers(); "
            "import evaltune.metrics.scorers.hallucination, evaltune.metrics.scorers.judges, "
            "evaltune.metrics.scorers.consistency, "
            "evaltune.metrics.model_loaders.embeddings; "
            "print([m for m in ('torch', 'transformers', 'spacy', 'sentence_transformers') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- validation on the labelled set (the project's own; public data: tests/test_validate_hallucination.py) ---

HALLUCINATED_KINDS = ("entity_swap", "number_change", "date_change", "negation", "invented_detail")
FAITHFUL_KINDS = ("paraphrase", "restatement", "partial")


@pytest.fixture(scope="module")
def validation() -> Any:
    from bench import validate_hallucination as bench
    from bench.hallucination_data import read_own

    rows = read_own()
    grounded = get_scorer("grounded_hallucination").score_batch([bench.to_example(r) for r in rows])
    return rows, grounded


def test_labelled_set_is_balanced_and_covers_every_kind() -> None:
    rows = [json.loads(line) for line in (ROOT / "tests" / "data" / "hallucination_labelled.jsonl").open()]
    assert len(rows) >= 120
    assert sum(r["label"] for r in rows) == len(rows) // 2
    assert {r["kind"] for r in rows} == {*HALLUCINATED_KINDS, *FAITHFUL_KINDS}


@pytest.mark.slow
def test_grounded_hallucination_beats_its_measured_floor_on_the_own_set(validation: Any) -> None:
    # Measured with the constants of metrics/detector.py (fitted mostly on public data; see detector.FITTED_ON):
    # balanced accuracy 0.729, AUROC 0.836 on all 144 rows (it was 0.896 / 0.909 when fitted on this set alone).
    from bench.detector_fit import auroc, balanced_accuracy

    rows, grounded = validation
    labels = [r.label for r in rows]
    flags = [r.details["hallucinated"] for r in grounded]
    assert balanced_accuracy(labels, flags) >= 0.70
    assert auroc(labels, [r.value for r in grounded]) >= 0.80
