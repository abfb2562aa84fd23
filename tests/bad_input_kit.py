"""What the bad-input corpus is made of: a ``Case`` (name, command line, words its one error line must hold), the
``case`` row builder, the corpus folder, and the functions that write generated inputs into a test's folder.

In the command line and the words, ``{bad}`` is the corpus folder (``tests/bad_inputs/``), ``{tmp}`` the test's
temporary folder, ``{model}`` a tiny model folder, ``{adapter}`` a LoRA adapter for it and ``{other_adapter}``
one made for a model of another size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

BAD = Path(__file__).parent / "bad_inputs"
HUGE_ITEM_MB = 50


@dataclass(frozen=True)
class Case:
    name: str
    args: str
    words: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    absent: tuple[str, ...] = ()  # words the message must not hold (a password)
    make: Callable[[Path], None] | None = None  # writes a generated input into {tmp}


def case(name: str, args: str, *words: str, env: dict[str, str] | None = None, absent: tuple[str, ...] = (),
         make: Callable[[Path], None] | None = None, owner: str = "") -> object:
    """One row of the table; ``owner`` names the file to fix where this case still fails (a strict xfail)."""
    marks = [pytest.mark.xfail(strict=True, reason=f"a traceback; the fix belongs in {owner}")] if owner else []
    return pytest.param(Case(name, args, words, tuple((env or {}).items()), absent, make), id=name, marks=marks)


def huge_item(tmp: Path) -> None:
    """A JSONL file whose second item's input is 50 MB of text."""
    with (tmp / "huge.jsonl").open("w", encoding="utf-8") as out:
        out.write('{"id": "small", "input": "What is the capital of France?"}\n')
        out.write('{"id": "huge", "input": "' + "word " * (HUGE_ITEM_MB * 2**20 // 5) + '"}\n')


def a_file(tmp: Path) -> None:
    (tmp / "weights.bin").write_bytes(b"\0" * 16)


def a_rubric_suite(tmp: Path) -> None:
    """A suite with an llm-rubric assertion: its run asks the judge."""
    (tmp / "rubric.yaml").write_text("name: judged\nitems:\n  - id: tone\n    input: Say hello.\n    assert:\n"
                                     "      - {type: llm-rubric, value: Is polite.}\n", encoding="utf-8")


def an_lm_eval_task_with_python(tmp: Path) -> None:
    """An lm-evaluation-harness task file whose prompt is a Python function (``!function``)."""
    (tmp / "lm_task.yaml").write_text("task: t\ndataset_path: json\ndataset_kwargs: {data_files: d.jsonl}\n"
                                      "doc_to_text: !function utils.doc_to_text\n", encoding="utf-8")


def a_suite_file(tmp: Path) -> None:
    (tmp / "smoke.yaml").write_text("name: mine\nitems: [{id: a, input: hi}]\n", encoding="utf-8")


RUN = "run {bad}/suites/%s --model {model}"
ITEMS = "run {bad}/items/%s --model {model}"
GATE = "gate 1 2 --gate {bad}/gates/%s"
IMPORT = "data import {bad}/datasets/%s"
