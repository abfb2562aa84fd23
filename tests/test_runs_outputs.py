"""``evaltune runs outputs``: each output beside its item's question and references, with the scores that apply.

Outputs come through the real ``evaltune run`` from a fake endpoint that answers from a table
(``tests/fixtures/answer_server.py``): right, wrong, abstaining, a hallucination, and a long hostile answer.
The tiny chat model shows that its chat template never reaches the question.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import select

from evaltune.db.engine import Store
from evaltune.db.evaluation import Generation, SuiteItem
from tests.conftest import Cli
from tests.fixtures.answer_server import answer_server

CONTEXT = ("The Fenwick orchard has 120 apple trees and 35 pear trees. It opens to visitors in September, when "
           "the first apples are ripe, and closes at the first frost.")
SUITE = f"""\
name: outputs-check
generation:
  max_new_tokens: 64
  temperature: 0.0
  chat: always
  system_prompt: Answer briefly.
scorers: [answer_match, abstention, token_f1]
items:
  - id: fact-peru
    input: What is the capital of Peru?
    references: [Lima]
    tags: [factual]
  - id: fact-japan
    input: What is the capital of Japan?
    references: [Tokyo]
    tags: [factual]
  - id: fict-zarnia
    input: What is the capital of Zarnia?
    expect_abstention: true
    tags: [fictional]
  - id: fict-ombrevale
    input: Who governed the Ombrevale Territories?
    expect_abstention: true
    tags: [fictional]
  - id: ctx-orchard
    input: How many apple trees are in the orchard?
    context: "{CONTEXT}"
    references: ["120"]
    tags: [context]
  - id: chat-colour
    input:
      - {{role: user, content: Name a primary colour.}}
      - {{role: assistant, content: Blue.}}
      - {{role: user, content: Name another primary colour.}}
    references: [red, yellow]
    tags: [chat]
"""
# Red is right; the rest makes it long, and it carries a terminal escape sequence and markup.
LONG = ("Red. Red is one of the three primary colours of the painter's wheel, with yellow and blue, and it "
        "cannot be mixed from other paints. \x1b[31mRed\x1b[0m <script>alert(1)</script> \u202eis also a word.")
ANSWERS = {"good": {"capital of Peru": "Lima.", "capital of Japan": "Kyoto.",
                    "capital of Zarnia": "The capital of Zarnia is Vell.", "apple trees": "There are 120 apple trees.",
                    "another primary": LONG}}
QUESTIONS = {"fact-peru": "What is the capital of Peru?", "fact-japan": "What is the capital of Japan?",
             "fict-zarnia": "What is the capital of Zarnia?",
             "fict-ombrevale": "Who governed the Ombrevale Territories?",
             "ctx-orchard": "How many apple trees are in the orchard?", "chat-colour": "Name another primary colour."}
# The scorers that apply to each item: abstention only where abstaining is right, the reference scorers only
# where there are references.
APPLY = {"fact-peru": {"answer_match", "token_f1"}, "fact-japan": {"answer_match", "token_f1"},
         "fict-zarnia": {"abstention"}, "fict-ombrevale": {"abstention"},
         "ctx-orchard": {"answer_match", "token_f1"}, "chat-colour": {"answer_match", "token_f1"}}
# token_f1 is not pass/fail here (the orchard's is 1/3), so only answer_match and abstention decide failures.
FAILED = {"fact-japan": ["answer_match"], "fict-zarnia": ["abstention"]}

@pytest.fixture
def run_id(store: Store, tmp_path: Path, cli: Cli) -> int:
    """One run of SUITE on the fake endpoint's model "good"."""
    suite = tmp_path / "outputs-check.yaml"
    suite.write_text(SUITE, encoding="utf-8")
    with answer_server(ANSWERS) as url:
        code, _out, err = cli("run", str(suite), "--model", f"openai:{url}", "--model-name", "good")
    assert code == 0, err
    return 1


def _jsonl(out: str) -> dict[str, dict[str, Any]]:
    return {record["item"]: record for record in map(json.loads, out.splitlines())}


def test_each_output_beside_its_question_references_and_the_scores_that_apply(
    store: Store, run_id: int, cli: Cli
) -> None:
    code, out, err = cli("runs", "outputs", str(run_id), "--format", "jsonl")
    assert code == 0, err
    records = _jsonl(out)
    assert list(records) == list(QUESTIONS)  # suite order
    for key, record in records.items():
        assert record["question"] == QUESTIONS[key]
        assert set(record["scores"]) == APPLY[key], key
        assert record["failed"] == FAILED.get(key, []), key
        assert record["schema_version"] == 1 and record["sample"] == 0
    assert records["ctx-orchard"]["context"] == CONTEXT and records["fact-peru"]["context"] is None
    assert records["chat-colour"]["references"] == ["red", "yellow"] and records["chat-colour"]["output"] == LONG
    assert records["fict-ombrevale"]["output"] == "I don't know." and records["fict-ombrevale"]["references"] == []
    assert records["fact-japan"]["scores"] == {"answer_match": 0.0, "token_f1": 0.0}
    assert records["fict-zarnia"]["scores"] == {"abstention": 0.0}
    # What the model was given carries the system prompt (and the context); the question never does.
    with store.session_scope() as session:
        prompts = dict(session.execute(select(SuiteItem.key, Generation.prompt)
                                       .join(Generation, Generation.item_id == SuiteItem.id)).all())
    assert all("Answer briefly." in prompts[key] for key in QUESTIONS)
    assert CONTEXT in prompts["ctx-orchard"]
    assert all("Answer briefly." not in r["question"] and "role" not in r["question"] for r in records.values())


def test_failures_tags_and_scorers_filter_and_unknown_ones_are_refused(run_id: int, cli: Cli) -> None:
    def keys(*options: str) -> list[str]:
        code, out, err = cli("runs", "outputs", str(run_id), "--format", "jsonl", *options)
        assert code == 0, err
        return list(_jsonl(out))

    assert keys("--failures") == ["fact-japan", "fict-zarnia"]
    assert keys("--failures", "--scorer", "abstention") == ["fict-zarnia"]
    assert keys("--failures", "--scorer", "answer_match") == ["fact-japan"]
    assert keys("--tag", "fictional") == ["fict-zarnia", "fict-ombrevale"]
    assert keys("--tag", "factual", "--failures") == ["fact-japan"]
    code, out, _err = cli("runs", "outputs", str(run_id), "--format", "jsonl", "--scorer", "abstention")
    assert {k: set(r["scores"]) for k, r in _jsonl(out).items()} == {
        k: APPLY[k] & {"abstention"} for k in QUESTIONS}
    refused = [
        (("--tag", "fictionl"), ["--tag", "'fictionl'", "did you mean 'fictional'", "chat, context, factual"]),
        (("--scorer", "answer_mach"), ["--scorer", "did you mean 'answer_match'", "abstention, answer_match"]),
    ]
    for options, words in refused:
        code, out, err = cli("runs", "outputs", str(run_id), *options)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
        assert all(word in err for word in words), err
    code, out, err = cli("runs", "outputs", "99")
    assert code == 2 and "no run 99" in err and out == ""


def test_the_table_fits_100_columns_and_csv_keeps_every_text_whole(
    run_id: int, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    code, out, err = cli("runs", "outputs", str(run_id))
    assert code == 0, err
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert lines[0].split() == ["item", "question", "reference", "output"]
    japan = next(i for i, line in enumerate(lines) if line.startswith("fact-japan"))
    assert "What is the capital of Japan?" in lines[japan] and "Tokyo" in lines[japan] and "Kyoto." in lines[japan]
    assert lines[japan + 1].split() == ["answer_match", "0", "✗", "·", "token_f1", "0"]
    orchard = next(i for i, line in enumerate(lines) if line.startswith("ctx-orchard"))
    assert lines[orchard + 1].strip().startswith("context: The Fenwick orchard") and lines[orchard + 1].endswith("…")
    colour = next(line for line in lines if line.startswith("chat-colour"))
    assert colour.endswith("…") and "Red. Red is one" in colour
    # An escape sequence or a bidirectional override from a model is shown as its code, never sent to the terminal.
    assert "\x1b" not in out and "\u202e" not in out
    assert lines[-1].startswith("6 outputs of run 1")
    code, out, err = cli("runs", "outputs", str(run_id), "--format", "csv")
    assert code == 0, err
    frame = pd.read_csv(io.StringIO(out), keep_default_na=False, na_values=[""])
    assert list(frame["item"]) == list(QUESTIONS)
    assert list(frame.columns) == ["schema_version", "item", "sample", "question", "context", "references", "output",
                                   "tags", "failed", "generation_id", "abstention", "answer_match", "token_f1"]
    row = frame.set_index("item").loc["chat-colour"]
    assert row["output"] == LONG and json.loads(row["references"]) == ["red", "yellow"]
    assert pd.isna(row["abstention"]) and row["answer_match"] == 1.0
    assert json.loads(frame.set_index("item").loc["fact-japan", "failed"]) == ["answer_match"]


def test_a_chat_model_s_template_never_reaches_the_question(
    store: Store, tiny_model_dir: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _out, err = cli("run", "smoke", "--model", str(tiny_model_dir), "--limit", "4")
    assert code == 0, err
    with store.session_scope() as session:
        stored = session.execute(select(SuiteItem.key, SuiteItem.item_metadata, Generation.prompt)
                                 .join(Generation, Generation.item_id == SuiteItem.id)).all()
    assert len(stored) == 4 and all("<|im_start|>" in prompt for *_rest, prompt in stored)  # the template is there
    code, out, err = cli("runs", "outputs", "1", "--format", "jsonl")
    assert code == 0, err
    questions = {key: record["question"] for key, record in _jsonl(out).items()}
    assert questions == {"fact-capital-peru": "What is the capital of Peru?",
                         "fact-octagon": "How many sides does an octagon have?",
                         "fict-ombrevale": "Who was the first governor of the Ombrevale Territories?",
                         "ctx-orchard": "How many apple trees are in the orchard?"}
    # The suite's context_template rewrote the orchard's input when it was loaded; the question is the author's.
    raw = {key: meta.get("raw_input") for key, meta, _prompt in stored}
    assert raw["ctx-orchard"] == questions["ctx-orchard"]
    monkeypatch.setenv("COLUMNS", "100")
    code, out, err = cli("runs", "outputs", "1")
    assert code == 0 and "Answer briefly" not in out  # ...and neither it nor the system prompt is shown


MC_SUITE = """\
name: outputs-mc
scorers: [choice_accuracy]
items:
  - {id: mc-france, input: "The capital of France is", choices: [" Paris", " Lyon", " Nice"], gold: [0]}
  - {id: mc-peru, input: "The capital of Peru is", choices: [" Cusco", " Lima"], gold: 1}
"""


def test_a_multiple_choice_output_is_the_choice_the_model_found_most_likely(
    store: Store, tiny_model_dir: Path, tmp_path: Path, cli: Cli
) -> None:
    suite = tmp_path / "outputs-mc.yaml"
    suite.write_text(MC_SUITE, encoding="utf-8")
    code, _out, err = cli("run", str(suite), "--model", str(tiny_model_dir))
    assert code == 0, err
    with store.session_scope() as session:
        stored = session.execute(select(SuiteItem.key, SuiteItem.choices, Generation.choice_logprobs, Generation.output)
                                 .join(Generation, Generation.item_id == SuiteItem.id)).all()
    assert all(output == "" for *_rest, output in stored)  # no text is generated for a multiple-choice item
    likeliest = {key: choices[max(range(len(choices)), key=lambda i: logprobs[i])]
                 for key, choices, logprobs, _output in stored}
    code, out, err = cli("runs", "outputs", "1", "--format", "jsonl")
    assert code == 0, err
    records = _jsonl(out)
    assert {key: r["output"] for key, r in records.items()} == likeliest
    assert records["mc-france"]["references"] == [" Paris"] and records["mc-peru"]["references"] == [" Lima"]
    for record in records.values():
        right = record["output"] == record["references"][0]
        assert record["scores"] == {"choice_accuracy": float(right)}
        assert record["failed"] == ([] if right else ["choice_accuracy"])
