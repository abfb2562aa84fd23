"""The user-named model scorers, nli_contradiction and judge: skipped without a model; with tiny local
models built here and a fake OpenAI-compatible endpoint, the plumbing (labels, shapes, determinism,
batching, probabilities in [0, 1]), not accuracy. The judge itself is tested in test_judges.py."""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from evaltune.harness.judges import JudgeSpec, judging_for, load_judge
from evaltune.metrics.model_loaders.judge_models import ModelLoadError, read_yes_no
from evaltune.metrics.records import Example
from evaltune.metrics.registry import get_scorer
from evaltune.metrics.scorers.judges import judge_request
from tests.fixtures.answer_server import send_json

PASSAGE = "The Harlow Bridge over the Ness River was completed in 1887. Visitors must not climb the towers."


def example(output: str, context: str | None = PASSAGE) -> Example:
    return Example(item_id="x", prompt="Tell me about the Harlow Bridge.", output=output, context=context)


def score(name: str, *examples: Example) -> list[Any]:  # Any: tests compare values without narrowing
    return get_scorer(name).score_batch(list(examples))


def test_model_scorers_are_skipped_with_a_clear_reason(monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("EVALTUNE_NLI_MODEL", raising=False)
    monkeypatch.delenv("EVALTUNE_JUDGE_MODEL", raising=False)
    for name, variable in (("nli_contradiction", "EVALTUNE_NLI_MODEL"), ("judge", "EVALTUNE_JUDGE_MODEL")):
        results = score(name, example("a"), example("b"))
        assert all(r.value is None and r.details["skipped"] for r in results)
        assert f"set {variable}=" in results[0].details["reason"]
        with caplog.at_level(logging.WARNING):
            assert get_scorer(name).aggregate([], results) == []
        assert sum(variable in record.message for record in caplog.records) == 1
        caplog.clear()


def _tiny_nli(tiny_model_dir: Path, folder: Path, labels: dict[int, str]) -> Path:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.padding_side = "right"  # BERT's absolute positions: pad on the right
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, id2label=labels,
                        label2id={v: k for k, v in labels.items()}, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_nli_contradiction_reads_the_contradiction_label(tiny_model_dir: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _tiny_nli(tiny_model_dir, tmp_path / "nli", {0: "ENTAILMENT", 1: "NEUTRAL", 2: "CONTRADICTION"})
    monkeypatch.setenv("EVALTUNE_NLI_MODEL", str(folder))
    batch = [example("The bridge opened in 1887. It is red."), example("Visitors may climb it."), example("x", None)]
    first, second = score("nli_contradiction", *batch), score("nli_contradiction", *batch)
    assert [r.value for r in first] == [r.value for r in second]  # deterministic
    assert all(0.0 <= r.value <= 1.0 for r in first[:2]) and first[2].value is None
    assert len(first[0].details["sentences"]) == 2
    assert first[0].value == pytest.approx(max(s["contradiction"] for s in first[0].details["sentences"]), abs=1e-4)
    alone = score("nli_contradiction", batch[1])[0]
    assert alone.value == pytest.approx(first[1].value, abs=1e-5)  # batching does not change a score
    grounded = score("grounded_hallucination", batch[0])[0]  # the NLI signal joins the combined score
    assert grounded.details["signals"]["nli_contradiction"] == pytest.approx(first[0].value, abs=1e-4)


def test_nli_model_without_a_contradiction_label_is_refused(tiny_model_dir: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    folder = _tiny_nli(tiny_model_dir, tmp_path / "sentiment", {0: "negative", 1: "positive"})
    monkeypatch.setenv("EVALTUNE_NLI_MODEL", str(folder))
    with pytest.raises(ModelLoadError, match="no contradiction label"):
        score("nli_contradiction", example("a"))


def test_the_judge_scorer_asks_the_configured_judge(tiny_model_dir: Path) -> None:
    batch = [example("It opened in 1887."), example("It is made of cheese.", context=None),
             example("A much longer answer about the bridge, its towers, its engineer and the river below it.")]
    spec = JudgeSpec(str(tiny_model_dir))
    with judging_for(spec):  # as harness.scoring hands the run's judge to the scorers
        results = score("judge", *batch)
        again = score("judge", *batch)
        one_by_one = [score("judge", e)[0].value for e in batch]
    graded = load_judge(spec).rubric([judge_request(e) for e in batch])
    assert [r.value for r in results] == pytest.approx([1 - g.normalized for g in graded if g.normalized is not None])
    assert all(0.0 <= r.value <= 1.0 and r.details["method"] == "logprobs" for r in results)
    assert "Faithfulness" in judge_request(batch[0]).criteria and judge_request(batch[0]).context == PASSAGE
    assert "Factual accuracy" in judge_request(batch[1]).criteria and judge_request(batch[1]).context is None
    assert [r.value for r in again] == [r.value for r in results]
    assert one_by_one == pytest.approx([r.value for r in results], abs=1e-5)  # padding does not leak


class _FakeCompletions(BaseHTTPRequestHandler):
    """An OpenAI-compatible /completions endpoint answering one token, with or without log-probs."""

    reply: ClassVar[dict[str, Any]] = {}
    seen: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"path": self.path, **body})
        send_json(self, 200, {"choices": [type(self).reply]})

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeCompletions)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"openai:http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_endpoint_nli_asks_the_contradiction_question(fake_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALTUNE_NLI_MODEL", fake_endpoint)
    monkeypatch.setenv("EVALTUNE_NLI_MODEL_NAME", "nli-model")
    top = {" Yes": math.log(0.2), " No": math.log(0.6)}
    _FakeCompletions.reply = {"text": " No", "logprobs": {"top_logprobs": [top]}}
    [result] = score("nli_contradiction", example("It opened in 1887. It is red."))
    assert result.value == pytest.approx(0.25) and len(result.details["sentences"]) == 2
    assert "contradict" in _FakeCompletions.seen[-1]["prompt"]
    assert read_yes_no({"text": " No"}) == 0.0 and read_yes_no({"text": "perhaps"}) is None
