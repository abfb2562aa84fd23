"""Judges: a model that grades outputs (G-Eval rubric scores) or compares two (pairwise, both orders).

    from evaltune.harness.judges import JudgeSpec, load_judge, RubricRequest
    judge = load_judge(JudgeSpec("openai:http://127.0.0.1:8000/v1", "judge-model"))
    [score] = judge.rubric([RubricRequest("What is 2+2?", "4", "The answer is correct.")])
    score.score, score.normalized, score.method          # 4.6, 0.9, "logprobs"

``config`` says which judge a run uses (the suite's ``judge:``, ``--judge``, ``EVALTUNE_JUDGE_MODEL``); ``rubric``
and ``pairwise`` what it is asked and how its replies are read; ``local`` and ``endpoint`` how it is asked;
``cache`` keeps its answers in the store. Only ``config`` is imported with the package: the suite loader reads a
``judge:`` block without loading any model code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from evaltune.harness.judges.config import (
    JudgeSpec,
    JudgeSpecError,
    configured_judge,
    judge_from_options,
    judge_from_settings,
    parse_judge_block,
)
from evaltune.metrics.judging import RubricRequest, RubricScore

if TYPE_CHECKING:
    from evaltune.harness.judges.cache import JudgeCache
    from evaltune.harness.judges.clients import JudgeError
    from evaltune.harness.judges.judge import Judge, judging_for, load_judge
    from evaltune.harness.judges.pairwise import PairRequest, PairSummary, PairVerdict, pairwise_summary

_LAZY = {
    "JudgeCache": "cache", "JudgeError": "clients", "Judge": "judge", "judging_for": "judge", "load_judge": "judge",
    "PairRequest": "pairwise", "PairSummary": "pairwise", "PairVerdict": "pairwise", "pairwise_summary": "pairwise",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"evaltune.harness.judges.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'evaltune.harness.judges' has no attribute '{name}'")


__all__ = [
    "Judge", "JudgeCache", "JudgeError", "JudgeSpec", "JudgeSpecError", "PairRequest", "PairSummary", "PairVerdict",
    "RubricRequest", "RubricScore", "configured_judge", "judge_from_options", "judge_from_settings", "judging_for",
    "load_judge", "pairwise_summary", "parse_judge_block",
]
