"""Per-item assertions (metrics.assertions): each type passing and failing, its not- form, weights and metric
names, the run's rates with their intervals, every load-time refusal, and the model-backed types on real models
(the offline MiniLM, the registered scorers, a tiny judge)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from evaltune.db import Store
from evaltune.db.evaluation import RunMetric
from evaltune.harness.judges import JudgeSpec, RubricRequest, judging_for, load_judge
from evaltune.metrics.assertions import (
    ASSERTION_TYPES,
    PROMPTFOO_INSTEAD,
    AssertionSpecError,
    assertion_from_dict,
    assertion_labels,
    assertion_metrics,
    assertion_table_markdown,
    check_assertions,
    item_verdict,
)
from evaltune.metrics.assertions.check import CHECKS
from evaltune.metrics.assertions.outcome import compared
from evaltune.metrics.records import Assertion, AssertionResult, Example
from evaltune.metrics.stats.intervals import wilson_interval
from tests.conftest import invoke_main

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def store_url(tmp_path: Path) -> str:  # the store is incidental here: SQLite only
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture(autouse=True)
def _no_judge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVALTUNE_JUDGE_MODEL", raising=False)


def example(output: str, *specs: dict[str, Any], **fields: Any) -> Example:
    return Example(item_id=fields.pop("item_id", "q"), prompt=fields.pop("prompt", "Where is the Eiffel Tower?"),
                   output=output, assertions=tuple(assertion_from_dict(s) for s in specs), **fields)


def check(spec: dict[str, Any], output: str, **fields: Any) -> AssertionResult:
    (result,) = check_assertions([example(output, spec, **fields)])[0]
    return result


def negated(spec: dict[str, Any]) -> dict[str, Any]:
    return {**spec, "type": f"not-{spec['type']}"}


ORDER_SCHEMA = {"type": "object", "required": ["order_id", "action"]}
# (assertion, an output it passes, an output it fails, the failure's reason, the not- form's failure's reason)
CASES: list[tuple[dict[str, Any], str, str, str, str | None]] = [
    ({"type": "equals", "value": "Paris"}, "Paris", "Paris.", 'expected to equal "Paris"',
     'expected not to equal "Paris"'),
    ({"type": "contains", "value": "812"}, "Refunded order 812.", "Refunded order 813.", 'expected to contain "812"',
     'expected not to contain "812"'),
    ({"type": "icontains", "value": "PARIS"}, "It is paris.", "It is Rome.", 'expected to contain "PARIS"',
     'expected not to contain "PARIS"'),
    ({"type": "contains-any", "value": ["yes", "sure"]}, "sure thing", "Yes!", 'expected to contain any of "yes", '
     '"sure"', 'expected not to contain any of "yes", "sure"'),
    ({"type": "contains-all", "value": ["order", "812"]}, "order 812", "order 9", 'missing "812"',
     'expected not to contain all of "order", "812"'),
    ({"type": "icontains-any", "value": ["YES", "SURE"]}, "Sure.", "No.", 'expected to contain any of "YES"',
     "expected not to contain any of"),
    ({"type": "icontains-all", "value": ["ORDER", "812"]}, "Order 812", "order", 'missing "812"',
     "expected not to contain all of"),
    ({"type": "starts-with", "value": "{"}, '{"a": 1}', ' {"a": 1}', 'expected to start with "{"',
     'expected not to start with "{"'),
    ({"type": "regex", "value": r"\bParis\b"}, "It is Paris.", "Parisian food", r"expected to match /\bParis\b/",
     r"expected not to match /\bParis\b/"),
    ({"type": "is-json"}, ' {"a": 1}\n', 'Sure! {"a": 1}', "not valid JSON: Expecting value at line 1 col 1",
     "expected not to be valid JSON"),
    ({"type": "is-json", "schema": ORDER_SCHEMA}, '{"order_id": 812, "action": "refund"}', '{"order_id": 812}',
     "schema: 'action' is a required property", "expected not to be valid JSON matching the schema"),
    ({"type": "is-json", "schema": {"type": "object", "properties": {"items": {"type": "array",
                                                                             "items": {"type": "integer"}}}}},
     '{"items": [1, 2]}', '{"items": [1, "two"]}', "schema: 'two' is not of type 'integer' at $.items[1]",
     "expected not to be valid JSON"),
    ({"type": "contains-json"}, 'Here you go:\n```json\n{"a": 1}\n```\nAnything else?', "No JSON here [at all",
     "no JSON object or array in the output", "expected not to hold a JSON value"),
    ({"type": "contains-json", "schema": {"type": "object", "required": ["action"]}},
     'Done: {"action": "refund"} and [1, 2]', 'Done: {"order": 1} and {"order": 2}',
     "schema: 'action' is a required property", "expected not to hold a JSON value matching the schema"),
    ({"type": "levenshtein", "value": "kitten", "threshold": 3}, "sitting", "sitting down",
     'edit distance 8 > 3 from "kitten"', 'edit distance 3 <= 3 from "kitten"'),
    ({"type": "levenshtein", "value": "Paris"}, "Pariss", "The city of Paris", "edit distance 12 > 5",
     "edit distance 1 <= 5"),
    ({"type": "rouge-n", "value": "the cat sat on the mat"}, "The cat sat on the mat.", "A dog ran away.",
     'ROUGE-1 0.00 < 0.75 with "the cat sat on the mat"', 'ROUGE-1 1.00 >= 0.75 with "the cat sat on the mat"'),
    ({"type": "rouge-n", "value": ["a dog", "the cat sat on the mat"], "n": 2, "threshold": 0.5},
     "the cat sat on a mat", "a cat and the mat", "ROUGE-2 0.22 < 0.50", "ROUGE-2 0.60 >= 0.50"),
    ({"type": "bleu", "value": "The quick brown fox jumps over the lazy dog."},
     "The quick brown fox jumps over the lazy dog.", "A slow red cat sleeps.", "BLEU 0.", "BLEU 1.00 >= 0.50"),
    ({"type": "max-words", "value": 3}, "one two three", "one two three four", "got 4 words, max 3", None),
    ({"type": "min-words", "value": 3}, "one two three", "one two", "got 2 words, min 3", None),
    ({"type": "max-chars", "value": 5}, "12345", "123456", "got 6 characters, max 5", None),
]


@pytest.mark.parametrize(("spec", "good", "bad", "reason", "_not_reason"), CASES,
                         ids=[f"{c[0]['type']}-{k}" for k, c in enumerate(CASES)])
def test_each_type_passes_and_fails_with_a_reason(spec: dict[str, Any], good: str, bad: str, reason: str,
                                                  _not_reason: str | None) -> None:
    passed, failed = check(spec, good), check(spec, bad)
    assert passed.passed is True and passed.reason, passed
    assert failed.passed is False and reason in failed.reason, failed


@pytest.mark.parametrize(("spec", "good", "bad", "not_reason"), [(s, g, b, n) for s, g, b, _, n in CASES if n],
                         ids=[f"not-{c[0]['type']}-{k}" for k, c in enumerate(CASES) if c[4]])
def test_each_not_form_flips_the_verdict(spec: dict[str, Any], good: str, bad: str, not_reason: str) -> None:
    assert check(negated(spec), bad).passed is True
    flipped = check(negated(spec), good)
    assert flipped.passed is False and not_reason in flipped.reason, flipped


def test_every_type_has_a_check_and_a_case_and_negation_is_where_it_makes_sense() -> None:
    assert set(CHECKS) == set(ASSERTION_TYPES)
    tested = {spec["type"] for spec, *_ in CASES} | {"similar", "scorer", "llm-rubric", "latency"}
    assert tested == set(ASSERTION_TYPES)
    not_negatable = {name for name, kind in ASSERTION_TYPES.items() if not kind.negatable}
    assert not_negatable == {"latency", "max-words", "min-words", "max-chars", "scorer"}
    assert not set(PROMPTFOO_INSTEAD) & set(assertion_labels())


def test_measured_numbers_are_kept() -> None:
    assert check({"type": "max-words", "value": 3}, "a b c d").measured == 4
    assert check({"type": "levenshtein", "value": "kitten"}, "sitting").measured == 3
    assert check({"type": "contains", "value": "x"}, "x").measured is None
    assert (compared(0.6993, 0.7), compared(0.62, 0.7), compared(0.7, 0.7)) == ("0.699 < 0.70", "0.62 < 0.70",
                                                                                "0.70 >= 0.70")


def test_latency_passes_fails_and_is_skipped_when_unknown() -> None:
    spec = {"type": "latency", "threshold": 1000}
    assert check(spec, "hi", latency_ms=250.0).passed is True
    slow = check(spec, "hi", latency_ms=1450.0)
    assert (slow.passed, slow.reason, slow.measured) == (False, "took 1450 ms, max 1000 ms", 1450.0)
    unknown = check(spec, "hi")
    assert unknown.passed is None and unknown.reason.startswith("skipped:") and "not recorded" in unknown.reason


# Model-backed types ----------------------------------------------------------------------------------------------

def test_similar_on_the_offline_embedding_model() -> None:
    spec = {"type": "similar", "value": "Paris is the capital of France.", "threshold": 0.7}
    close = check(spec, "The capital of France is Paris.")
    assert close.passed is True and close.measured is not None and close.measured >= 0.7
    assert close.reason.startswith("cosine 0.") and '>= 0.70 with "Paris is the capital of France."' in close.reason
    far = check(spec, "Bananas are rich in potassium.")
    assert far.passed is False and far.measured is not None and far.measured < 0.7
    assert far.reason == f'cosine {far.measured:.2f} < 0.70 with "Paris is the capital of France."'
    assert check(negated(spec), "Bananas are rich in potassium.").passed is True
    assert check(negated(spec), "The capital of France is Paris.").passed is False
    several = {"type": "similar", "value": ["Bananas are yellow.", "Paris is the capital of France."]}
    best = check(several, "The capital of France is Paris.")
    assert best.passed is True and best.reason.endswith('with "Paris is the capital of France."')


def test_similar_in_one_batch_equals_one_by_one() -> None:
    specs = [{"type": "similar", "value": v} for v in ("A cat sat down.", "Water boils at 100 C.")]
    outputs = ["The cat is sitting.", "At sea level water boils at one hundred degrees.", "Stocks fell today."]
    batched = check_assertions([example(o, *specs) for o in outputs])
    one_by_one = [check_assertions([example(o, *specs)])[0] for o in outputs]
    assert [r.measured for rs in batched for r in rs] == pytest.approx(
        [r.measured for rs in one_by_one for r in rs], abs=1e-5)


def test_scorer_type_with_registered_scorers() -> None:
    short = {"type": "scorer", "name": "length", "max": 3}
    assert check(short, "one two").passed is True
    long = check(short, "one two three four five")
    assert (long.passed, long.reason, long.measured) == (False, "length 5 > max 3", 5.0)
    right = {"type": "scorer", "name": "answer_match", "min": 1}
    assert check(right, "It is Paris.", references=("Paris",)).passed is True
    wrong = check(right, "It is Rome.", references=("Paris",))
    assert wrong.passed is False and wrong.reason == "answer_match 0 < min 1"
    within = check({"type": "scorer", "name": "length", "min": 1, "max": 3}, "a b")
    assert within.reason == "length 2 within min 1 and max 3"


def test_scorer_type_with_parameters_uses_the_scorer_id() -> None:
    spec = {"type": "scorer", "name": "rouge", "variant": "1", "min": 0.5}
    bigram = {"type": "scorer", "name": "rouge", "variant": "2", "min": 0.5}
    out = example("a cat and the mat", spec, bigram, references=("the cat sat on the mat",))
    unigram_result, bigram_result = check_assertions([out])[0]
    assert (unigram_result.passed, unigram_result.reason) == (True, "rouge_1 0.545 within min 0.5")
    assert (bigram_result.passed, bigram_result.reason) == (False, "rouge_2 0.222 < min 0.5")


def test_scorer_without_a_value_is_skipped_with_its_reason() -> None:
    result = check({"type": "scorer", "name": "answer_match", "min": 1}, "Paris")  # no references
    assert result.passed is None and result.reason.startswith("skipped: answer_match gave no value (")


def test_llm_rubric_without_a_judge_is_skipped_and_says_how_to_configure_one() -> None:
    spec = {"type": "llm-rubric", "value": "Answers in one sentence."}
    out = example("Paris.", spec, {"type": "contains", "value": "Paris"})
    results = check_assertions([out])[0]
    assert results[0].passed is None
    assert "set EVALTUNE_JUDGE_MODEL=" in results[0].reason and "llm-rubric" in results[0].reason
    verdict = item_verdict(out.assertions, results)
    assert (verdict.passed, verdict.score, verdict.skipped) == (True, 1.0, (0,))


def test_llm_rubric_asks_the_configured_judge(tiny_model_dir: Path) -> None:
    rubric = "Answers in one sentence and names the city."
    outputs = ["Paris.", "The capital of France is a city on the Seine called Paris, famous for its tower.", "No."]
    lenient, strict = ({"type": "llm-rubric", "value": rubric, "threshold": t} for t in (0.0, 1.0))
    batch = [example(o, lenient, strict, negated(strict)) for o in outputs]
    judge = JudgeSpec(str(tiny_model_dir))
    with judging_for(judge):  # as harness.scoring hands the run's judge to the checks
        results = check_assertions(batch)
        one_by_one = [check_assertions([e])[0][0].measured for e in batch]
    expected = load_judge(judge).rubric([RubricRequest(e.prompt, e.output, rubric) for e in batch])
    for (low, high, not_high), score in zip(results, expected, strict=True):
        assert score.score is not None and score.normalized is not None and 0.0 < score.normalized < 1.0
        assert low.measured == pytest.approx(score.normalized) and low.passed is True
        assert low.details["method"] == "logprobs" and low.details["judge_score"] == pytest.approx(score.score)
        assert high.passed is False and high.reason == (
            f"judge score {score.score:.2f} of 5 (weighted by its probabilities), scaled {score.normalized:.2f} "
            f'< 1.00 for "{rubric}"')
        assert not_high.passed is True
    assert one_by_one == pytest.approx([r[0].measured for r in results], abs=1e-5)  # padding does not leak


# Weights, metric names, the run's rates -------------------------------------------------------------------------

def test_a_weight_0_failure_is_reported_and_never_fails_the_item() -> None:
    out = example("Paris", {"type": "contains", "value": "Paris"}, {"type": "contains", "value": "France", "weight": 0})
    results = check_assertions([out])[0]
    verdict = item_verdict(out.assertions, results)
    assert (verdict.passed, verdict.score, verdict.failed, verdict.skipped) == (True, 1.0, (1,), ())


def test_the_score_is_the_weighted_share_that_passed() -> None:
    out = example("Paris", {"type": "contains", "value": "Paris", "weight": 3},
                  {"type": "contains", "value": "France"}, {"type": "max-words", "value": 1, "weight": 0.5},
                  {"type": "llm-rubric", "value": "Is short.", "weight": 10})  # skipped: no judge
    verdict = item_verdict(out.assertions, check_assertions([out])[0])
    assert verdict.passed is False and verdict.score == pytest.approx(3.5 / 4.5)
    assert (verdict.failed, verdict.skipped) == ((1,), (3,))


def test_nothing_counted_gives_no_verdict() -> None:
    out = example("x", {"type": "contains", "value": "y", "weight": 0}, {"type": "llm-rubric", "value": "Is kind."})
    verdict = item_verdict(out.assertions, check_assertions([out])[0])
    assert (verdict.passed, verdict.score, verdict.failed, verdict.skipped) == (None, None, (0,), (1,))


def test_pass_rate_per_type_and_per_metric_with_wilson_intervals(caplog: pytest.LogCaptureFixture) -> None:
    fmt = {"type": "is-json", "metric": "format"}
    no_ai = {"type": "not-contains", "value": "As an AI"}
    outputs = [example('{"a": 1}', fmt, no_ai), example("As an AI, I cannot.", fmt, no_ai),
               example('{"b": 2}', fmt, no_ai, {"type": "llm-rubric", "value": "Is JSON.", "metric": "format"}),
               example("no assertions here")]
    results = check_assertions(outputs)
    metrics = {m.name: m for m in assertion_metrics(outputs, results)}
    assert list(metrics) == ["pass_rate", "assertion_score", "pass_rate:is-json", "pass_rate:not-contains",
                             "pass_rate:format"]
    rate = metrics["pass_rate"]
    assert (rate.value, rate.n) == (pytest.approx(2 / 3), 3)
    assert (rate.ci_low, rate.ci_high) == pytest.approx(wilson_interval(2, 3))
    assert rate.details["skipped"] == 1 and "EVALTUNE_JUDGE_MODEL" in next(iter(rate.details["skipped_reasons"]))
    assert metrics["pass_rate:not-contains"].value == pytest.approx(2 / 3)
    assert (metrics["pass_rate:format"].value, metrics["pass_rate:format"].n) == (pytest.approx(2 / 3), 3)
    assert metrics["assertion_score"].value == pytest.approx((1 + 0 + 1) / 3)
    assert assertion_metrics([outputs[3]], [()]) == []
    skipped_only = [example("x", {"type": "llm-rubric", "value": "Is kind."})]
    assert assertion_metrics(skipped_only, check_assertions(skipped_only)) == []
    assert "no assertion could be judged" in caplog.text


# Load time -------------------------------------------------------------------------------------------------------

def test_what_is_written_reads_back_unchanged() -> None:
    specs = [spec for spec, *_ in CASES] + [negated(spec) for spec, *_, n in CASES if n] + [
        {"type": "similar", "value": ["a", "b"], "threshold": 0.7, "weight": 2.0, "metric": "tone"},
        {"type": "scorer", "name": "rouge", "variant": "2", "min": 0.1, "max": 0.9},
        {"type": "llm-rubric", "value": "Is kind.", "threshold": 0.6}, {"type": "latency", "threshold": 500}]
    for spec in specs:
        assertion = assertion_from_dict(spec)
        assert assertion.to_dict() == spec and assertion_from_dict(assertion.to_dict()) == assertion
    assert assertion_from_dict({"type": "not-regex", "value": "x"}) == Assertion("regex", True, "x")


BAD = [
    ("a string", "type", "an assertion is a mapping"),
    ({"value": "x"}, "type", "every assertion needs a type"),
    ({"type": "contians", "value": "x"}, "type", "unknown assertion type 'contians' (did you mean 'contains'?)"),
    ({"type": "not-contian", "value": "x"}, "type", "did you mean 'not-contains'?"),
    ({"type": "javascript", "value": "output.length < 9"}, "type", "a plugin scorer"),
    ({"type": "factuality", "value": "x"}, "type", "use llm-rubric"),
    ({"type": "cost", "threshold": 0.01}, "type", "does not have: no prices are recorded"),
    ({"type": "not-latency", "threshold": 9}, "type", "latency has no not- form"),
    ({"type": "not-max-words", "value": 9}, "type", "write min-words instead"),
    ({"type": "contains"}, "value", "contains needs 'value'"),
    ({"type": "latency"}, "threshold", "latency needs 'threshold'"),
    ({"type": "contains", "value": 812}, "value", 'write "812" in quotes'),
    ({"type": "contains", "value": ""}, "value", "must be a non-empty text, not an empty text"),
    ({"type": "contains-any", "value": "a, b"}, "value", "must be a non-empty list of texts"),
    ({"type": "contains-all", "value": []}, "value", "not an empty list"),
    ({"type": "max-words", "value": "120"}, "value", "must be a whole number of 0 or more"),
    ({"type": "max-words", "value": -1}, "value", "of 0 or more"),
    ({"type": "max-chars", "value": 2.5}, "value", "must be a whole number"),
    ({"type": "regex", "value": "(Paris"}, "value", "invalid regular expression '(Paris': missing ), unterminated"),
    ({"type": "is-json", "schema": {"type": "objekt"}}, "schema", "not a valid JSON Schema at 'type'"),
    ({"type": "is-json", "schema": "object"}, "schema", "must be a mapping"),
    ({"type": "contains-json", "schema": {"required": "order_id"}}, "schema", "not a valid JSON Schema"),
    ({"type": "is-json", "value": {"type": "object"}}, "value", "write its JSON Schema under 'schema'"),
    ({"type": "contains", "value": "x", "threshhold": 1}, "threshhold", "contains has no field 'threshhold'"),
    ({"type": "similar", "value": "x", "treshold": 0.7}, "treshold", "did you mean 'threshold'?"),
    ({"type": "similar", "value": "x", "threshold": 70}, "threshold",
     "must be a number from 0 to 1, not the number 70"),
    ({"type": "similar", "value": "x", "threshold": True}, "threshold", "not the boolean true"),
    ({"type": "levenshtein", "value": "x", "threshold": 0.5}, "threshold", "must be a whole number"),
    ({"type": "rouge-n", "value": "x", "n": 3}, "n", "must be 1 or 2"),
    ({"type": "latency", "threshold": 0}, "threshold", "must be a number above 0"),
    ({"type": "llm-rubric", "value": "x", "threshold": 1.5}, "threshold", "from 0 to 1"),
    ({"type": "contains", "value": "x", "weight": -1}, "weight", "must be a number of 0 or more"),
    ({"type": "contains", "value": "x", "metric": "not-contains"}, "metric", "is an assertion type"),
    ({"type": "contains", "value": "x", "metric": ""}, "metric", "must be a non-empty text"),
    ({"type": "scorer", "max": 1}, "name", "scorer needs 'name'"),
    ({"type": "scorer", "name": "lenght", "max": 1}, "name", "unknown scorer 'lenght' (did you mean 'length'?)"),
    ({"type": "scorer", "name": "length"}, "min", "needs 'min', 'max' or both"),
    ({"type": "scorer", "name": "length", "min": 5, "max": 1}, "min", "min 5 is above max 1; swap them"),
    ({"type": "scorer", "name": "length", "max": "short"}, "max", "must be a number"),
    ({"type": "scorer", "name": "rouge", "variant": "3", "min": 0.5}, "variant", "parameter 'variant'"),
    ({"type": "scorer", "name": "rouge", "varaint": "1", "min": 0.5}, "varaint", "did you mean 'variant'"),
    ({"type": "scorer", "name": "length", "threshold": 3, "max": 1}, "threshold", "has no parameter 'threshold'"),
    ({"type": "scorer", "name": "length", "maxx": 3}, "maxx", "or the assertion's own key (did you mean 'max'?)"),
]


@pytest.mark.parametrize(("data", "field", "words"), BAD, ids=[f"{k}-{b[1]}" for k, b in enumerate(BAD)])
def test_a_bad_assertion_is_refused_naming_the_field_and_the_fix(data: Any, field: str, words: str) -> None:
    with pytest.raises(AssertionSpecError) as raised:
        assertion_from_dict(data)
    assert raised.value.field == field
    assert words in str(raised.value) and str(raised.value) == raised.value.message


# The README and the command line --------------------------------------------------------------------------------

def test_the_readme_table_is_the_catalogue() -> None:
    table = assertion_table_markdown()
    assert all(f"| `{name}` |" in table for name in [*ASSERTION_TYPES, *PROMPTFOO_INSTEAD])
    assert table in (ROOT / "README.md").read_text(encoding="utf-8"), "regenerate the README's assertion table"


SUITE = """\
name: checked
defaults:
  assert:
    - {type: not-contains, value: "As an AI language model"}
items:
  - id: capital
    input: What is the capital of France?
    references: [Paris]
    assert:
      - {type: similar, value: "Paris is the capital of France.", threshold: 0.99}
      - {type: llm-rubric, value: "Names the city.", threshold: 0.0}
      - {type: scorer, name: rouge, variant: "1", max: 1.0}
      - {type: not-is-json, metric: prose}
"""


def test_a_run_checks_model_backed_assertions_and_stores_their_rates(
        store: Store, tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    suite = tmp_path / "checked.yaml"
    suite.write_text(SUITE, encoding="utf-8")
    monkeypatch.setenv("EVALTUNE_JUDGE_MODEL", str(tiny_model_dir))
    code, out, err = invoke_main(["run", str(suite), "--model", str(tiny_model_dir), "--max-new-tokens", "6"],
                                 monkeypatch, capsys)
    assert code == 0, err
    with store.session_scope() as s:
        rates = {m.name: m.value for m in s.scalars(select(RunMetric).where(RunMetric.name.like("pass_rate%")))}
    # Gibberish from the tiny model is not similar at 0.99, meets a rubric at threshold 0 and is not JSON.
    assert rates == {"pass_rate": 0.0, "pass_rate:not-contains": 1.0, "pass_rate:similar": 0.0,
                     "pass_rate:llm-rubric": 1.0, "pass_rate:scorer": 1.0, "pass_rate:not-is-json": 1.0,
                     "pass_rate:prose": 1.0}
    assert "pass_rate:llm-rubric" in out


def test_suites_validate_refuses_a_threshold_out_of_range(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    suite = tmp_path / "bad.yaml"
    suite.write_text(SUITE.replace("threshold: 0.99", "threshold: 99"), encoding="utf-8")
    code, _out, err = invoke_main(["suites", "validate", str(suite)], monkeypatch, capsys)
    assert code == 2
    assert "item capital" in err and "assert[0].threshold" in err and "must be a number from 0 to 1" in err
