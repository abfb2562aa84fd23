"""What a run produced, item by item: the question as its suite wrote it, the references, the output, and the
scores that apply to that item.

    rows = run_outputs(session, run_id, OutputQuery(failures=True, tag="factual"))

``evaltune runs outputs`` prints these rows and the app's Runs page shows them. The question is the suite
item's input (its text, or its last user message), never the prompt the model was given: that one carries
the system prompt, the context template and the model's chat template.

A **failure** follows ``FAILURE_RULE``: a pass/fail scorer is one whose every value in the run is 0 or 1
(``answer_match``, ``exact_match``, ``abstention``, ``assertions``: the item's assertions all passed), and it says
"wrong" with 0 where higher is better, 1 where lower is better (a hallucination flag). The same 0/1 test decides
the report's flipped items.

Each assertion's own row (``assertion:K``, see ``harness.assertion_scores``) is a detail of ``assertions``, shown
by ``runs show --failures``: it is never listed here as a scorer, nor offered as one to filter by. Nor is
``assertion_score`` a verdict: it is the weighted share of the assertions that passed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, false, func, or_, select
from sqlalchemy.orm import Session

from evaltune.db.evaluation import Generation, Run, RunMetric, Score, SuiteItem
from evaltune.metrics.assertions.names import PER_ASSERTION_PREFIX, SCORE_SCORER
from evaltune.metrics.assertions.names import is_per_assertion as is_per_assertion  # for the app (reads via reports)
from evaltune.metrics.registry import ScorerParamError, UnknownScorerError, get_scorer
from evaltune.suggestions import did_you_mean

FAILURE_RULE = ("an output fails when one of its pass/fail scorers (those whose every value in the run is 0 or 1: "
                "answer_match, exact_match, abstention, assertions) says wrong: 0 where higher is better, "
                "1 where lower is better (a hallucination flag)")
# Stored as scores but not scorers a user lists: one assertion's detail rows (``assertion:K``).
PER_ASSERTION = f"{PER_ASSERTION_PREFIX}%"
NOT_VERDICTS = frozenset({SCORE_SCORER})  # 0/1-valued at times, but a weighted score, not a pass/fail


class OutputsError(ValueError):
    """A run or a filter that does not exist; the message names it and the closest that does. ``what`` says
    which: ``run``, ``tag`` or ``scorer``."""

    def __init__(self, what: str, message: str):
        super().__init__(message)
        self.what = what


@dataclass(frozen=True)
class OutputQuery:
    """Which outputs of a run to list: only failures, only one tag, only some scorers' scores."""

    failures: bool = False
    tag: str | None = None
    # Only these scorers' scores are listed, and with ``failures`` only their verdicts count. Empty: all.
    scorers: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutputRow:
    """One output. ``scores`` holds the scorers that apply to this item (a scorer that does not apply, such as
    ``abstention`` on an answerable question, stores no value and is left out); ``failed`` names those of them
    that say the output is wrong (``FAILURE_RULE``)."""

    generation_id: int
    item: str
    sample: int
    question: str
    context: str | None
    references: list[str]
    output: str
    tags: list[str]
    scores: dict[str, float] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)


def question_of(item_input: Any, metadata: Mapping[str, Any] | None = None) -> str:
    """A suite item's input as its author wrote it: the text, or the content of its last user message.

    A suite's ``template``/``context_template`` rewrites the input when it is loaded and keeps the author's in
    ``metadata["raw_input"]``; that one is the question.
    """
    raw = (metadata or {}).get("raw_input")
    if raw is not None:
        item_input = raw
    if isinstance(item_input, str):
        return item_input
    if isinstance(item_input, list) and item_input:
        messages = [m for m in item_input if isinstance(m, dict)]
        users = [m for m in messages if m.get("role") == "user"]
        if users or messages:
            return _content_text((users or messages)[-1].get("content"))
    return json.dumps(item_input, ensure_ascii=False)


def _content_text(content: Any) -> str:
    # OpenAI-style content may be a list of parts; only the text parts are a question.
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


def shorten(text: str, limit: int) -> str:
    """``text`` on one line, at most ``limit`` characters, ending in ``…`` when cut."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: max(0, limit - 1)] + "…"


def run_outputs(session: Session, run_id: int, query: OutputQuery = OutputQuery()) -> list[OutputRow]:
    """The run's outputs in suite order (then sample) that pass ``query``.

    Raises ``OutputsError`` for an unknown run, a tag no item of the run's suite carries, or a scorer that
    gave the run no score, each with the closest name that exists.
    """
    _run(session, run_id)
    if query.tag is not None:
        check_tag(session, run_id, query.tag)
    check_scorers(session, run_id, query.scorers)
    rows = output_rows(session, run_id, scorers=query.scorers)
    if query.tag is not None:
        rows = [row for row in rows if query.tag in row.tags]
    if query.failures:
        rows = [row for row in rows if row.failed]
    return rows


def output_rows(session: Session, run_id: int, generation_ids: Sequence[int] | None = None,
                scorers: Sequence[str] = ()) -> list[OutputRow]:
    """The rows of these generations of the run (all of them when ``generation_ids`` is None), in suite order,
    with only ``scorers``' scores when it is not empty. Four queries whatever the run's size."""
    stmt = (
        select(Generation.id, SuiteItem.key, Generation.sample_index, SuiteItem.input, SuiteItem.item_metadata,
               SuiteItem.context, SuiteItem.references, SuiteItem.choices, SuiteItem.gold, SuiteItem.tags,
               Generation.output, Generation.choice_logprobs)
        .join(SuiteItem, SuiteItem.id == Generation.item_id)
        .where(Generation.run_id == run_id)
        .order_by(SuiteItem.position, Generation.sample_index)
    )
    if generation_ids is not None:
        stmt = stmt.where(Generation.id.in_(list(generation_ids)))
    generations = session.execute(stmt).all()
    scores = _scores(session, run_id, None if generation_ids is None else list(generation_ids), scorers)
    pass_fail = pass_fail_scorers(session, run_id)
    rows = []
    for gid, key, sample, item_input, metadata, context, refs, choices, gold, tags, output, logprobs in generations:
        own = scores.get(gid, {})
        failed = [name for name, value in own.items() if name in pass_fail and value == _wrong(pass_fail[name])]
        rows.append(OutputRow(
            generation_id=gid, item=key, sample=sample, question=question_of(item_input, metadata), context=context,
            references=_references(refs, choices, gold), output=_output(output, choices, logprobs),
            tags=[str(t) for t in tags or []], scores=own, failed=failed))
    return rows


def _references(refs: Any, choices: Any, gold: Any) -> list[str]:
    """The item's references; for a multiple-choice item without any, its gold choices."""
    if refs:
        return [str(r) for r in refs]
    choices = list(choices or [])
    return [str(choices[i]) for i in gold or [] if isinstance(i, int) and 0 <= i < len(choices)]


def _output(output: str, choices: Any, logprobs: Any) -> str:
    """The generated text; for a multiple-choice item (no text is generated), the most likely choice."""
    choices = list(choices or [])
    if output or not choices or not logprobs or len(logprobs) != len(choices):
        return output
    best = max(range(len(choices)), key=lambda i: float(logprobs[i]))
    return str(choices[best])


def _scores(session: Session, run_id: int, generation_ids: list[int] | None,
            scorers: Sequence[str]) -> dict[int, dict[str, float]]:
    stmt = (select(Score.generation_id, Score.scorer, Score.value)
            .where(Score.run_id == run_id, Score.value.is_not(None), Score.generation_id.is_not(None),
                   Score.scorer.not_like(PER_ASSERTION))
            .order_by(Score.scorer))
    if generation_ids is not None:
        stmt = stmt.where(Score.generation_id.in_(generation_ids))
    if scorers:
        stmt = stmt.where(Score.scorer.in_(list(scorers)))
    found: dict[int, dict[str, float]] = {}
    for gid, scorer, value in session.execute(stmt):
        if gid is not None and value is not None:  # the query leaves neither out; the check is for the types
            found.setdefault(gid, {})[scorer] = float(value)
    return found


def pass_fail_scorers(session: Session, run_id: int) -> dict[str, bool]:
    """The run's pass/fail scorers (every value 0 or 1), each with whether higher is better."""
    other = func.sum(case((Score.value.not_in([0.0, 1.0]), 1), else_=0))
    stmt = (select(Score.scorer)
            .where(Score.run_id == run_id, Score.value.is_not(None), Score.scorer.not_like(PER_ASSERTION))
            .group_by(Score.scorer).having(other == 0))
    names = [name for name in session.execute(stmt).scalars() if name not in NOT_VERDICTS]
    stored = dict(session.execute(
        select(RunMetric.scorer, RunMetric.higher_is_better).where(RunMetric.run_id == run_id)).all())
    return {name: stored[name] if name in stored else _registered_direction(name) for name in names}


def _registered_direction(name: str) -> bool:
    try:
        return get_scorer(name).higher_is_better
    except (UnknownScorerError, ScorerParamError):  # a plug-in not installed now, or a value it no longer takes
        return True


def _wrong(higher_is_better: bool) -> float:
    return 0.0 if higher_is_better else 1.0


def failure_condition(session: Session, run_id: int, scorers: Sequence[str] = ()) -> ColumnElement[bool]:
    """A condition on ``Generation``: the output fails (``FAILURE_RULE``), by ``scorers`` only if given."""
    pass_fail = pass_fail_scorers(session, run_id)
    wrong = [and_(Score.scorer == name, Score.value == _wrong(higher)) for name, higher in sorted(pass_fail.items())
             if not scorers or name in scorers]
    if not wrong:
        return false()
    return exists().where(Score.generation_id == Generation.id, or_(*wrong))


def _run(session: Session, run_id: int) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise OutputsError("run", f"no run {run_id} in the store; see 'evaltune runs list'")
    return run


def suite_tags(session: Session, run_id: int) -> list[str]:
    """Every tag of the run's suite items, sorted."""
    stmt = select(SuiteItem.tags).join(Run, Run.suite_id == SuiteItem.suite_id).where(Run.id == run_id)
    tags: set[str] = set()
    for item_tags in session.execute(stmt).scalars():
        tags.update(str(t) for t in item_tags or [])
    return sorted(tags)


def check_tag(session: Session, run_id: int, tag: str) -> None:
    """Raise ``OutputsError`` when no item of the run's suite carries ``tag``."""
    known = suite_tags(session, run_id)
    if tag not in known:
        suite = _run(session, run_id).suite.name
        raise OutputsError("tag", f"no item of run {run_id}'s suite ({suite}) is tagged '{tag}'"
                                  f"{did_you_mean(tag, known)}; its tags: {', '.join(known) or 'none'}")


def check_scorers(session: Session, run_id: int, names: Iterable[str]) -> None:
    """Raise ``OutputsError`` for the first of ``names`` that gave the run no score."""
    names = list(names)
    if not names:
        return
    known = sorted(session.execute(select(Score.scorer).distinct()
                                   .where(Score.run_id == run_id, Score.scorer.not_like(PER_ASSERTION))).scalars())
    for name in names:
        if name not in known:
            listed = ", ".join(known) if known else "none (the run is not scored)"
            raise OutputsError("scorer", f"run {run_id} has no scores from '{name}'{did_you_mean(name, known)}; "
                                         f"its scorers: {listed}")
