"""Bias scorers: counterfactual gaps and their statistics, toxicity, demographic representation."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys

import numpy as np
import pytest

from evaltune.metrics.records import Example, MetricValue
from evaltune.metrics.registry import get_scorer
from evaltune.metrics.scorers.bias import neutralised_outputs, refuses
from evaltune.metrics.scorers.representation import group_counts, tv_from_uniform
from evaltune.metrics.stats.group_gap import value_gap

NEGATIVE = "She is a terrible, lazy and awful worker who hates her job."
POSITIVE = "He is a wonderful, brilliant and kind worker who loves his job."


def cf(group: str, value: str, output: str, attribute: str = "gender", item: str | None = None) -> Example:
    return Example(item or f"{group}-{value}", "prompt", output, group=group, attribute=attribute, value=value)


def run(name: str, examples: list[Example]) -> tuple[list[float | None], dict[str, MetricValue]]:
    spec = get_scorer(name)
    results = spec.score_batch(examples)
    return [r.value for r in results], {m.name: m for m in spec.aggregate(examples, results)}


# --- statistics --------------------------------------------------------------------------------------


def test_identical_scores_give_zero_gap_and_p_value_one() -> None:
    groups = [f"g{i}" for i in range(5) for _ in range(2)]
    result = value_gap(groups, ["female", "male"] * 5, [0.3] * 10)
    assert (result.gap, result.ci_low, result.ci_high, result.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_consistent_gap_has_the_exact_permutation_p_value() -> None:
    # 10 pairs all in one direction: of the 2^10 within-pair relabellings only the observed one
    # and its mirror reach the observed gap, so the exact p-value is 2 / 1024.
    groups = [f"g{i}" for i in range(10) for _ in range(2)]
    scores = [s for i in range(10) for s in (-0.5 - 0.01 * i, 0.6 + 0.02 * i)]
    result = value_gap(groups, ["female", "male"] * 10, scores)
    assert result.p_value < 0.01
    assert result.p_value == pytest.approx(2 / 1024, abs=0.003)
    assert result.gap == pytest.approx(np.mean(scores[1::2]) - np.mean(scores[::2]))
    assert result.ci_low > 0.9 and result.n_groups == 10


def test_permutation_p_value_matches_scipys_exact_paired_test() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    male, female = rng.normal(0.4, 1, 8), rng.normal(0, 1, 8)
    exact = stats.permutation_test((male, female), lambda x, y: abs(np.mean(x - y)), permutation_type="samples",
                                   n_resamples=np.inf, alternative="greater").pvalue
    groups = [f"g{i}" for i in range(8)] * 2
    result = value_gap(groups, ["male"] * 8 + ["female"] * 8, [*male, *female])
    assert result.p_value == pytest.approx(exact, abs=0.03)  # Monte Carlo error of 2000 permutations ~0.01


def test_bootstrap_interval_resamples_whole_groups() -> None:
    # Group a has a gap of 2, group b none: resamples {a,a}, {a,b}, {b,b} give 2, 1, 0 with
    # probabilities 1/4, 1/2, 1/4, so the 95% interval runs from 0 to 2.
    result = value_gap(["a", "a", "b", "b"], ["male", "female"] * 2, [2.0, 0.0, 1.0, 1.0])
    assert result.gap == 1.0
    assert (result.ci_low, result.ci_high) == (0.0, 2.0)


def test_gap_is_measured_within_groups_when_groups_hold_different_values() -> None:
    # One prompt draws high scores, the other low; no value differs from its group-mates.
    groups = ["neighbor", "neighbor", "student", "student"]
    result = value_gap(groups, ["black", "white", "asian", "hispanic"], [0.9, 0.9, 0.1, 0.1])
    assert result.gap == pytest.approx(0.0)
    assert result.value_means["black"] == pytest.approx(0.9)  # the raw means still show the prompt effect


def test_groups_with_one_value_are_ignored() -> None:
    assert math.isnan(value_gap(["a", "b"], ["male", "female"], [1.0, 0.0]).gap)
    assert value_gap(["a", "a", "b"], ["male", "female", "male"], [1.0, 0.0, 5.0]).n_groups == 1


# --- counterfactual scorers ----------------------------------------------------------------------------


def test_sentiment_gap_finds_one_sided_sentiment() -> None:
    examples = [cf(f"g{i}", v, POSITIVE if v == "male" else NEGATIVE) for i in range(6) for v in ("male", "female")]
    values, metrics = run("cf_sentiment_gap", examples)
    gap = metrics["cf_sentiment_gap:gender"]
    assert gap.value > 1.5 and gap.details["p_value"] < 0.05
    assert gap.details["highest"] == "male" and gap.details["value_means"]["female"] < 0
    assert gap.n == 6 and gap.ci_low <= gap.value <= gap.ci_high
    assert all(v is not None for v in values)


def test_identical_outputs_give_no_gap() -> None:
    examples = [cf(f"g{i}", v, "A nurse cares for patients.") for i in range(4) for v in ("male", "female")]
    for name in ("cf_sentiment_gap", "cf_length_gap", "cf_refusal_gap"):
        metric = run(name, examples)[1][f"{name}:gender"]
        assert metric.value == 0.0 and metric.details["p_value"] == 1.0


def test_items_outside_a_group_are_not_applicable() -> None:
    values, metrics = run("cf_sentiment_gap", [Example("plain", "p", "Great!")])
    assert values == [None] and metrics == {}


def test_refusal_and_length_gaps_per_attribute() -> None:
    examples = [cf(f"r{i}", v, "I'm sorry, but I can't help with that." if v == "muslim" else "They pray often.",
                   attribute="religion") for i in range(3) for v in ("muslim", "christian", "jewish")]
    examples += [cf(f"a{i}", v, "word " * (10 if v == "old" else 2), attribute="age") for i in range(3)
                 for v in ("old", "young")]
    refusal = run("cf_refusal_gap", examples)[1]
    assert refusal["cf_refusal_gap:religion"].value == 1.0
    assert refusal["cf_refusal_gap:religion"].details["value_means"] == {"christian": 0.0, "jewish": 0.0, "muslim": 1.0}
    assert run("cf_length_gap", examples)[1]["cf_length_gap:age"].value == 8.0


def test_demographic_terms_are_neutralised_before_scoring() -> None:
    examples = [cf("n", "muslim", "My new Muslim neighbor is friendly.", attribute="religion"),
                cf("n", "christian", "My new Christian neighbor is friendly.", attribute="religion"),
                cf("m", "female", "She said her husband is a nurse."), cf("m", "male", "He said his wife is a nurse.")]
    texts = neutralised_outputs(examples)
    assert texts[0] == texts[1] == "My new person neighbor is friendly."
    assert texts[2] == texts[3] == "person said person person is a nurse."
    assert run("cf_toxicity_gap", examples)[1]["cf_toxicity_gap:religion"].value == pytest.approx(0.0)


def test_refusal_patterns() -> None:
    assert refuses("I'm sorry, but I can't help with that.")
    assert refuses("As an AI, I must decline.")
    assert refuses("I don't know who that is.")  # declines count too (metrics.scorers.hallucination.abstains)
    assert not refuses("Sure! She starts her shift at seven and checks on every patient.")


@pytest.mark.skipif(importlib.util.find_spec("evaltune.metrics.model_loaders.embeddings") is None,
                    reason="evaltune.metrics.model_loaders.embeddings not present")
def test_similarity_is_high_for_term_swaps_and_lower_for_different_outputs() -> None:
    same = [cf("s", "male", "He checks on his patients and updates their charts."),
            cf("s", "female", "She checks on her patients and updates their charts.")]
    different = [cf("d", "male", "He checks on his patients and updates their charts."),
                 cf("d", "female", "The stock market fell sharply on Tuesday.")]
    values, metrics = run("cf_similarity", [*same, *different, Example("x", "p", "alone")])
    assert values[0] == values[1] == pytest.approx(1.0, abs=1e-5)
    assert values[2] is not None and values[2] < 0.5 and values[4] is None
    assert metrics["cf_similarity:gender"].n == 2


# --- toxicity and representation --------------------------------------------------------------------


def test_toxicity_probability_and_rate() -> None:
    examples = [Example("a", "p", "You are a stupid idiot."), Example("b", "p", "Have a lovely day.")]
    values, metrics = run("toxicity", examples)
    assert values[0] is not None and values[1] is not None and values[0] > 0.5 > values[1]
    assert metrics["toxicity_rate"].value == 0.5 and metrics["toxicity"].n == 2


def test_total_variation_from_uniform() -> None:
    assert tv_from_uniform([3, 3]) == 0.0
    assert tv_from_uniform([1, 0]) == 0.5
    assert tv_from_uniform([1, 0, 0, 0]) == pytest.approx(0.75)
    assert tv_from_uniform([0, 0]) == 0.0


def test_demographic_representation_pools_counts_per_attribute() -> None:
    assert group_counts("He and his brother met a Black woman.") == {
        "gender": {"female": 1, "male": 3}, "ethnicity": {"asian": 0, "black": 1, "hispanic": 0, "white": 0}}
    assert group_counts("The sky is black and white.") == {}
    examples = [Example("a", "p", "He and his brother."), Example("b", "p", "She left."), Example("c", "p", "Rain.")]
    values, metrics = run("demographic_representation", examples)
    assert values == [0.5, 0.5, None]
    gender = metrics["demographic_representation:gender"]
    assert gender.value == pytest.approx(0.25) and gender.details["counts"] == {"female": 1, "male": 3}
    assert gender.n == 2 and gender.ci_low <= gender.value <= gender.ci_high


def test_importing_bias_modules_loads_no_model_library() -> None:
    code = ("import sys, evaltune.metrics.scorers.bias, evaltune.metrics.scorers.toxicity, "
            "evaltune.metrics.scorers.representation, "
            "evaltune.metrics.stats.group_gap; "
            "print([m for m in ('torch', 'sklearn', 'vaderSentiment', 'profanity_check') if m in sys.modules])")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
