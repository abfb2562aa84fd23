"""The first scorers and the statistics behind every interval."""

from __future__ import annotations

import math
import random

import pytest

from evaltune.metrics.records import Example
from evaltune.metrics.registry import UnknownScorerError, all_scorers, get_scorer
from evaltune.metrics.scorers.hallucination import abstains
from evaltune.metrics.stats.intervals import mean_with_ci, wilson_interval
from evaltune.metrics.text import contains_phrase, normalize


def score(name: str, output: str, **fields: object) -> float | None:
    return get_scorer(name).score_batch([Example("i", "p", output, **fields)])[0].value  # type: ignore[arg-type]


def test_normalize_folds_accents_case_punctuation_and_articles() -> None:
    assert normalize("  The Bogotá, D.C.! ") == "bogota d c"


@pytest.mark.parametrize(
    ("text", "phrase", "expected"),
    [
        ("Its symbol is Ta.", "Ta", True),
        ("The element is tantalum.", "Ta", False),  # no match inside a word
        ("The capital is Bogota.", "Bogotá", True),  # accents folded
        ("It landed in 1969.", "1969", True),
        ("It landed in 19690.", "1969", False),
        ("anything", "", False),
    ],
)
def test_contains_phrase_matches_whole_words(text: str, phrase: str, expected: bool) -> None:
    assert contains_phrase(text, phrase) is expected


def test_exact_match_uses_aliases_and_is_not_applicable_without_references() -> None:
    assert score("exact_match", "bogota", references=("Bogotá", "Santa Fe de Bogotá")) == 1.0
    assert score("exact_match", "The capital is Bogota.", references=("Bogotá",)) == 0.0
    assert score("exact_match", "anything") is None


def test_answer_match_accepts_a_chatty_answer_on_word_boundaries() -> None:
    assert score("answer_match", "The capital is Bogota.", references=("Lima", "Bogotá")) == 1.0
    assert score("answer_match", "tantalum", references=("Ta",)) == 0.0


def test_token_f1_is_squad_style() -> None:
    # prediction tokens: [paris, france]; reference [paris] -> P 1/2, R 1 -> F1 2/3
    assert score("token_f1", "Paris, France", references=("Paris",)) == pytest.approx(2 / 3)
    assert score("token_f1", "London", references=("Paris",)) == 0.0


def test_rouge_l_takes_the_best_reference_and_folds_accents() -> None:
    assert score("rouge_l", "the cat sat on the mat", references=("a dog", "the cat sat on the mat")) == 1.0
    assert score("rouge_l", "Bogotá", references=("Bogota",)) == 1.0


@pytest.mark.parametrize(
    ("output", "declined"),
    [
        ("I don't know.", True),
        ("I'm not sure who that is.", True),
        ("There is no such country as Veltravia.", True),
        ("Veltravia does not exist.", True),
        ("That appears to be a fictional place.", True),
        ("I’m not aware of any person by that name.", True),
        ("The capital of Veltravia is Morn.", False),
        ("He was born in 1950 in Lisbon.", False),
    ],
)
def test_abstention_recognises_declining_to_answer(output: str, declined: bool) -> None:
    assert abstains(output) is declined


def test_abstention_scores_only_unanswerable_items() -> None:
    assert score("abstention", "I don't know.", expect_abstention=True) == 1.0
    assert score("abstention", "The capital is Morn.", expect_abstention=True) == 0.0
    assert score("abstention", "Paris") is None


def test_choice_accuracy_reads_the_argmax_of_the_logprobs() -> None:
    assert score("choice_accuracy", "", choices=("a", "b"), gold=(1,), choice_logprobs=(-3.0, -1.0)) == 1.0
    assert score("choice_accuracy", "", choices=("a", "b"), gold=(0,), choice_logprobs=(-3.0, -1.0)) == 0.0


def test_registry_lists_scorers_with_family_and_direction_and_rejects_unknown_names() -> None:
    names = {spec.name for spec in all_scorers()}
    assert {"exact_match", "answer_match", "token_f1", "rouge_l", "abstention", "choice_accuracy"} <= names
    assert get_scorer("abstention").family == "hallucination"
    with pytest.raises(UnknownScorerError, match=r"unknown scorer 'nope'; known scorers: .*exact_match"):
        get_scorer("nope")


def test_wilson_interval_matches_the_textbook_formula() -> None:
    # 8 of 10: centre (0.8 + z²/20)/(1 + z²/10), a standard worked example gives [0.490, 0.943]
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.9433, abs=1e-4)


def test_intervals_cover_the_true_mean_about_95_percent_of_the_time() -> None:
    rng = random.Random(0)
    covered_binary = covered_continuous = 0
    trials = 300
    for _ in range(trials):
        binary = [float(rng.random() < 0.3) for _ in range(80)]
        continuous = [rng.gauss(0.5, 0.2) for _ in range(80)]
        b, c = mean_with_ci(binary), mean_with_ci(continuous)
        covered_binary += b.ci_low <= 0.3 <= b.ci_high
        covered_continuous += c.ci_low <= 0.5 <= c.ci_high
    assert 0.90 <= covered_binary / trials <= 0.99
    assert 0.90 <= covered_continuous / trials <= 0.99


def test_mean_with_ci_of_nothing_is_nan_with_n_zero() -> None:
    estimate = mean_with_ci([])
    assert estimate.n == 0 and math.isnan(estimate.value)


def test_wilson_interval_reaches_the_bounds_exactly_at_zero_and_all() -> None:
    assert wilson_interval(0, 6)[0] == 0.0
    assert wilson_interval(6, 6)[1] == 1.0
