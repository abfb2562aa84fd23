"""lm-evaluation-harness task files imported as suites: the numbers equal lm-eval's own on the same tiny model.

Both run in-process on the same model and the same local task YAMLs: evaltune through ``evaltune run TASK.yaml``
(the command line, into SQLite), lm-eval through ``simple_evaluate`` with those YAMLs. The generation task's
targets are half the model's own greedy answers (found by a first run), so exact_match is neither 0 nor 1.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest
from sqlalchemy import select

from evaltune.db.engine import open_store
from evaltune.db.evaluation import Generation, SuiteItem
from tests.conftest import Cli

# Choices of very different lengths, so that acc (sum of log-likelihoods) and acc_norm (per character) differ.
CHOICES = [["a", "the whole earth and the sky", "no"], ["yes", "blue", "an extremely long answer of many words"],
           ["seven", "7", "seventy seven thousand"], ["red", "green", "a somewhat longer colour name"]]
QUESTIONS = [f"Question {n}: what is thing {n}?" for n in range(16)]

MC_TASK = """task: tiny_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
description: "Answer the question.\\n\\n"
doc_to_text: "{{{{question}}}}\\nAnswer:"
doc_to_target: label
doc_to_choice: "{{{{choices}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
"""

GEN_TASK = """task: tiny_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "Q: {{{{question}}}}\\nA:"
doc_to_target: answer
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 6
  do_sample: false
metric_list:
  - metric: exact_match
"""


def _write(folder: Path, name: str, template: str, rows: Sequence[Mapping[str, object]]) -> Path:
    data = folder / f"{name}.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    task = folder / f"{name}.yaml"
    task.write_text(template.format(data=data.name), encoding="utf-8")
    return task


def _metrics(cli: Cli, task: Path, model: Path) -> dict[str, float]:
    code, out, err = cli("run", str(task), "--model", str(model), "--json")
    assert code == 0, err
    return {m["name"]: m["value"] for m in json.loads(out)["metrics"]}


def _outputs(suite: str) -> list[str]:
    store = open_store()
    try:
        with store.sessions() as session:
            rows = session.execute(select(Generation.output).join(SuiteItem, SuiteItem.id == Generation.item_id)
                                   .where(SuiteItem.key.like(f"{suite}-%")).order_by(Generation.id)).scalars()
            return list(rows)
    finally:
        store.close()


@pytest.mark.slow
def test_task_yamls_give_lm_evals_numbers(cli: Cli, tiny_model_dir: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    lm_eval = pytest.importorskip("lm_eval", reason="lm-eval is not installed (pip install -c constraints.txt lm-eval)")
    from lm_eval.tasks import TaskManager

    mc_rows = [{"question": q, "choices": CHOICES[n % 4], "label": n % 3} for n, q in enumerate(QUESTIONS)]
    mc_task = _write(tmp_path, "tiny_mc", MC_TASK, mc_rows)
    gen_rows = [{"question": q, "answer": "(first run)"} for q in QUESTIONS[:12]]
    first = _write(tmp_path, "tiny_gen", GEN_TASK, gen_rows)
    _metrics(cli, first, tiny_model_dir)
    answers = _outputs("tiny_gen")
    assert len(answers) == 12
    for n, row in enumerate(gen_rows):  # the model's own answer for even documents, a wrong one for odd
        row["answer"] = answers[n] if n % 2 == 0 else answers[n] + " (not this)"
    gen_task = _write(tmp_path, "tiny_gen", GEN_TASK, gen_rows)

    ours = _metrics(cli, mc_task, tiny_model_dir) | _metrics(cli, gen_task, tiny_model_dir)
    monkeypatch.chdir(tmp_path)  # lm-eval reads data_files relative to the current folder
    output = lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={tiny_model_dir},dtype=float32", tasks=["tiny_mc", "tiny_gen"],
        task_manager=TaskManager(include_path=str(tmp_path), include_defaults=False), device="cpu", batch_size=4,
        bootstrap_iters=0, log_samples=False)
    assert output is not None
    theirs = output["results"]
    print(f"\nours {ours}\ntheirs {theirs}")
    assert ours["choice_accuracy"] == pytest.approx(theirs["tiny_mc"]["acc,none"], abs=1e-9)
    assert ours["choice_accuracy_norm"] == pytest.approx(theirs["tiny_mc"]["acc_norm,none"], abs=1e-9)
    assert ours["pass_rate:exact_match"] == pytest.approx(theirs["tiny_gen"]["exact_match,none"], abs=1e-9)
    assert ours["pass_rate:exact_match"] == pytest.approx(0.5)  # half the targets are the model's own answers
    assert ours["choice_accuracy"] != ours["choice_accuracy_norm"] or ours["choice_accuracy"] not in (0.0, 1.0)


def test_a_task_that_runs_python_is_refused_naming_the_key_and_line(cli: Cli, tmp_path: Path) -> None:
    task = tmp_path / "task.yaml"
    task.write_text("task: t\ndataset_path: json\ndataset_kwargs: {data_files: d.jsonl}\n"
                    "doc_to_text: !function utils.doc_to_text\n", encoding="utf-8")
    code, _out, err = cli("run", str(task), "--model", "nonexistent-folder")
    assert code == 2
    assert f"{task}:4" in err and "doc_to_text is '!function'" in err


def test_an_unknown_metric_and_few_shot_are_refused(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text('{"q": "x", "a": "y"}\n', encoding="utf-8")
    task = tmp_path / "task.yaml"
    body = "task: t\ndataset_path: json\ndataset_kwargs: {data_files: {test: d.jsonl}}\ntest_split: test\n" \
           "doc_to_text: '{{q}}'\ndoc_to_target: a\n"
    task.write_text(body + "metric_list: [{metric: bleu}]\n", encoding="utf-8")
    code, _out, err = cli("run", str(task))
    assert code == 2 and "metric 'bleu' is not one evaltune computes for generate_until" in err
    task.write_text(body + "num_fewshot: 5\n", encoding="utf-8")
    code, _out, err = cli("run", str(task))
    assert code == 2 and "few-shot examples are not imported" in err
