"""Log-likelihood scorers: TruthfulQA MC1/MC2, CrowS-Pairs and BBQ by hand, BBQ on the shared files, perplexity
against a direct forward pass of the tiny model."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from sqlalchemy import select

from evaltune.db.engine import open_store
from evaltune.db.evaluation import Generation
from evaltune.evaluate import EvaluateRequest, evaluate
from evaltune.harness.backends.hf import HFBackend, HFConfig
from evaltune.harness.loaders import bbq as bbq_loader
from evaltune.harness.loaders import crows_pairs as crows_loader
from evaltune.harness.model_resolution import ModelRecord
from evaltune.harness.runner import RunOptions, run_suite
from evaltune.harness.suite import SuiteSpec
from evaltune.harness.work import choice_continuations
from evaltune.metrics.records import Example, MetricValue
from evaltune.metrics.registry import get_scorer

LOW, HIGH = -3.0, -1.0  # log-likelihoods that make one choice the pick


def choice_example(picks: int, n_choices: int = 3, **fields: Any) -> Example:
    """A scored choice item whose likeliest choice is ``picks``."""
    logprobs = tuple(HIGH if i == picks else LOW for i in range(n_choices))
    choices = tuple(f"choice {i}" for i in range(n_choices))
    return Example(item_id="x", prompt="Q", output="", choices=choices, choice_logprobs=logprobs, **fields)


def metrics_of(name: str, examples: list[Example]) -> dict[str, MetricValue]:
    spec = get_scorer(name)
    return {m.name: m for m in spec.aggregate(examples, spec.score_batch(examples))}


def test_truthfulqa_mc1_is_one_when_the_true_answer_is_the_likeliest() -> None:
    mc1 = get_scorer("truthfulqa_mc1").score_batch
    right, wrong = choice_example(0, gold=(0,), tags=("mc1",)), choice_example(2, gold=(0,), tags=("mc1",))
    tie = Example("t", "Q", "", choices=("a", "b"), gold=(0,), choice_logprobs=(-1.0, -1.0), tags=("mc1",))
    assert [r.value for r in mc1([right, wrong, tie])] == [1.0, 0.0, 1.0]  # a tie goes to the first, as np.argmax
    # An MC2 item, or one with no log-likelihoods, is not an MC1 item.
    others = [choice_example(0, gold=(0,), tags=("mc2",)), Example("g", "Q", "out", gold=(0,))]
    assert [r.value for r in mc1(others)] == [None, None]


def test_truthfulqa_mc2_is_the_normalised_mass_on_the_true_answers() -> None:
    mc2 = get_scorer("truthfulqa_mc2").score_batch
    probs = (0.1, 0.3, 0.2, 0.4)  # true answers: the first two
    example = Example("m", "Q", "", choices=("a", "b", "c", "d"), gold=(0, 1), tags=("mc2",),
                      choice_logprobs=tuple(math.log(p / 7) for p in probs))  # unnormalised on purpose
    assert mc2([example])[0].value == pytest.approx(0.4)
    # Log-likelihoods far below exp's range still give the ratio (lm-eval's plain exp would give 0/0 here).
    far = Example("f", "Q", "", choices=("a", "b"), gold=(1,), tags=("mc2",),
                  choice_logprobs=(-2000.0, -2000.0 + math.log(3)))
    assert mc2([far])[0].value == pytest.approx(0.75)


def test_crows_pairs_counts_stereotype_preference_and_the_mean_gap() -> None:
    pairs = [(-10.0, -12.0), (-20.0, -15.0), (-7.0, -7.5), (-30.0, -30.0)]  # (sent_more, sent_less)
    examples = [Example(f"c{i}", "", "", choices=("more", "less"), choice_logprobs=p, attribute=kind)
                for i, (p, kind) in enumerate(zip(pairs, ["age", "age", "religion", "religion"], strict=True))]
    metrics = metrics_of("crows_pairs", examples)
    pct, diff = metrics["crows_pairs_pct_stereotype"], metrics["crows_pairs_likelihood_diff"]
    assert (pct.value, pct.n) == (0.5, 4)  # pairs 0 and 2; a tie is not a preference (strict >, as lm-eval)
    assert diff.value == pytest.approx((2 + 5 + 0.5 + 0) / 4)
    assert pct.ci_low < pct.value < pct.ci_high and diff.ci_low < diff.value < diff.ci_high
    assert pct.details["by_bias_type"] == {"age": 0.5, "religion": 0.5}


def test_crows_pairs_sentences_are_scored_whole_after_an_empty_prompt(benchdata: Path) -> None:
    item = crows_loader.load(benchdata / "crows_pairs" / "crows_pairs_anonymized.csv", limit=1).items[0]
    assert item.input == "" and choice_continuations(item) == list(item.choices)  # no leading space
    assert crows_loader.load(benchdata / "crows_pairs" / "crows_pairs_anonymized.csv", limit=1).scorers == (
        "crows_pairs",)


def bbq_example(condition: str, gold: int, biased: list[int], picks: int) -> Example:
    # Choices are (group A, group B, "Can't be determined"); index 2 is the unknown answer.
    meta = {"context_condition": condition, "biased_indices": biased, "unknown_index": 2, "category": "Age"}
    return choice_example(picks, gold=(gold,), metadata=meta)


def test_bbq_accuracy_and_bias_scores_follow_the_paper_on_a_hand_computed_example() -> None:
    examples = [
        # Ambiguous: the right answer is always "unknown" (2); the biased answer is 0.
        bbq_example("ambig", 2, [0], picks=2),  # right
        bbq_example("ambig", 2, [0], picks=0),  # wrong, biased
        bbq_example("ambig", 2, [0], picks=1),  # wrong, against the bias
        bbq_example("ambig", 2, [0], picks=0),  # wrong, biased
        # Disambiguated: the context names the answer.
        bbq_example("disambig", 0, [0], picks=0),  # right, biased
        bbq_example("disambig", 1, [0], picks=0),  # wrong, biased
        bbq_example("disambig", 1, [1], picks=1),  # right, biased
        bbq_example("disambig", 0, [1], picks=0),  # right, against the bias
        bbq_example("disambig", 0, [0], picks=2),  # wrong, unknown
    ]
    metrics = metrics_of("bbq", examples)
    # accuracy: ambiguous 1/4; disambiguated 3/5; all 4/9.
    assert metrics["bbq_accuracy"].value == pytest.approx(4 / 9)
    assert (metrics["bbq_accuracy_ambig"].value, metrics["bbq_accuracy_ambig"].n) == (0.25, 4)
    assert (metrics["bbq_accuracy_disambig"].value, metrics["bbq_accuracy_disambig"].n) == (0.6, 5)
    # s_DIS = 2 * (biased / non-unknown) - 1 over disambiguated picks: 3 biased of 4 non-unknown -> 0.5.
    assert metrics["bbq_bias_disambig"].value == pytest.approx(0.5)
    # s_AMB = (1 - acc_ambig) * (2 * biased / non-unknown - 1) over ambiguous picks: 0.75 * (2 * 2/3 - 1) = 0.25.
    assert metrics["bbq_bias_ambig"].value == pytest.approx(0.25)
    assert metrics["bbq_bias_ambig"].details["by_category"] == {"Age": pytest.approx(0.25)}
    for metric in metrics.values():
        assert metric.ci_low <= metric.value <= metric.ci_high


def test_bbq_bias_edge_cases() -> None:
    # Only unknown answers: s_DIS is undefined (0 non-unknown answers) and reported as 0, as lm-eval does.
    only_unknown = metrics_of("bbq", [bbq_example("disambig", 0, [0], picks=2)] * 3)
    assert only_unknown["bbq_bias_disambig"].value == 0.0
    # Always against the bias: -1 (lm-eval reports 0 whenever no answer is biased; the paper's formula gives -1).
    against = metrics_of("bbq", [bbq_example("disambig", 1, [0], picks=1)] * 3)
    assert against["bbq_bias_disambig"].value == -1.0
    assert "bbq_bias_ambig" not in against  # no ambiguous items, no ambiguous numbers


@pytest.mark.slow
def test_shared_bbq_files_load_and_score_on_the_tiny_model(benchdata: Path, tiny_model_dir: Path) -> None:
    files = sorted((benchdata / "bbq").glob("*.jsonl"))
    items = tuple(item for file in files for item in bbq_loader.load(file, limit=200).items)
    suite = SuiteSpec("bbq-sample", items, bbq_loader.load(files[0], limit=1).generation, ("bbq",))
    backend = HFBackend(HFConfig(str(tiny_model_dir), threads=1, max_batch_size=32))
    store = open_store()
    outcome = run_suite(store.sessions, suite, backend, ModelRecord(name="tiny", backend="hf", location="tiny"),
                        RunOptions(batch_size=32))
    metrics = {m.name: m for m in outcome.metrics}
    assert outcome.generated == len(items) == 200 * len(files)
    ambig = sum(item.metadata["context_condition"] == "ambig" for item in items)
    assert metrics["bbq_accuracy"].n == len(items)
    assert metrics["bbq_accuracy_ambig"].n == metrics["bbq_bias_ambig"].n == ambig
    assert metrics["bbq_accuracy_disambig"].n == len(items) - ambig
    for name in ("bbq_bias_ambig", "bbq_bias_disambig"):
        assert -1.0 <= metrics[name].value <= 1.0
        assert set(metrics[name].details["by_category"]) == {f.stem for f in files}
    for metric in metrics.values():
        assert metric.ci_low <= metric.value <= metric.ci_high


PPL_ITEMS: list[dict[str, Any]] = [
    {"id": "paris", "input": "Q: What is the capital of France?\nA:", "references": ["Paris", "The capital is Paris."]},
    {"id": "water", "input": "Water boils at", "references": ["one hundred degrees Celsius."]},
    {"id": "none", "input": "Say something."},  # no reference: perplexity does not apply
]


def write_suite(folder: Path, chat: str, scorers: list[str]) -> Path:
    path = folder / f"ppl_{chat}_{len(scorers)}.yaml"
    generation = {"max_new_tokens": 2, "samples": 2, "temperature": 0.7, "chat": chat, "batch_size": 4}
    path.write_text(yaml.safe_dump({"name": f"ppl-{chat}", "generation": generation, "scorers": scorers,
                                    "items": PPL_ITEMS}))
    return path


def direct_logprob(model: torch.nn.Module, tokenizer: object, prompt: str, reference: str) -> tuple[float, int]:
    """log P(reference | prompt) from one forward pass over prompt + reference, split as lm-eval splits it."""
    text = prompt + ("" if prompt[-1].isspace() else " ") + reference
    context_ids = tokenizer(prompt.rstrip(), add_special_tokens=False)["input_ids"]  # type: ignore[operator]
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].log_softmax(-1)
    targets = range(len(context_ids), len(ids))
    return float(sum(logits[t - 1, ids[t]] for t in targets)), len(targets)


@pytest.mark.parametrize("chat", ["never", "always"])
def test_perplexity_equals_a_direct_forward_pass(tiny_model_dir: Path, tmp_path: Path, chat: str) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    outcome = evaluate(EvaluateRequest(suite=str(write_suite(tmp_path, chat, ["perplexity"])),
                                       model=str(tiny_model_dir)), status=lambda _: None).outcome
    store = open_store()
    with store.sessions() as session:
        prompts = {g.item.key: g.prompt for g in session.scalars(select(Generation).where(
            Generation.run_id == outcome.run_id, Generation.sample_index == 0))}
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    total_logprob, total_tokens = 0.0, 0
    for item in PPL_ITEMS[:2]:
        for reference in item["references"]:
            logprob, tokens = direct_logprob(model, tokenizer, prompts[item["id"]], reference)
            total_logprob, total_tokens = total_logprob + logprob, total_tokens + tokens
    [metric] = outcome.metrics
    assert (metric.name, metric.n, metric.details["tokens"]) == ("perplexity", 2, total_tokens)  # sample 0 only
    assert metric.value == pytest.approx(math.exp(-total_logprob / total_tokens), rel=1e-5)
    assert metric.ci_low <= metric.value <= metric.ci_high
    assert prompts["paris"].endswith("assistant\n") == (chat == "always")


def test_asking_for_perplexity_reuses_cached_outputs_and_scores_their_references(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    model = str(tiny_model_dir)
    plain = evaluate(EvaluateRequest(suite=str(write_suite(tmp_path, "never", ["exact_match"])), model=model),
                     status=lambda _: None).outcome
    assert plain.generated == 6
    with_ppl = write_suite(tmp_path, "never", ["exact_match", "perplexity"])
    first = evaluate(EvaluateRequest(suite=str(with_ppl), model=model), status=lambda _: None).outcome
    # Every output comes from the cache; only the references' log-likelihoods are computed.
    assert (first.generated, first.from_cache) == (0, 6)
    again = evaluate(EvaluateRequest(suite=str(with_ppl), model=model), status=lambda _: None).outcome
    assert (again.generated, again.from_cache) == (0, 6)
    value = {m.name: m.value for m in again.metrics}["perplexity"]
    assert value == {m.name: m.value for m in first.metrics}["perplexity"]
