"""``evaltune judge agreement --campaign N``: score a campaign's rated outputs with the judge and show how far it
agrees with the annotators (``reports.judge_agreement``); ``evaltune judge pairwise BASE CAND``: which run's outputs
the judge prefers (``reports.judge_pairwise``). The judge lives in ``harness``, the reports in ``reports``, which
may not import it: these commands hand the judge's answers over as plain values."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

import click

from evaltune.errors import UserError, user_errors

if TYPE_CHECKING:
    from evaltune.db.engine import Store
    from evaltune.harness.judges import Judge, JudgeSpec, PairSummary, PairVerdict
    from evaltune.reports.judge_agreement import (
        JudgeAgreement,
        JudgedQuestion,
        JudgeScore,
        JudgingPlan,
        RatedOutput,
    )
    from evaltune.reports.judge_pairwise import PairingPlan

T = TypeVar("T")
CHUNK = 64  # outputs judged per transaction: the judge's answers are kept as it goes, and no lock is held long


@click.group()
def judge() -> None:
    """The judge model: how far its scores agree with your annotators, and which of two runs it prefers."""


@judge.command("agreement")
@click.option("--campaign", "campaign_id", type=int, required=True,
              help="A campaign annotators have rated (see 'evaltune campaigns list').")
@click.option("--scorer", type=click.Choice(["llm-rubric", "judge"]),
              help="Judge one question only: llm-rubric (the Likert score, graded on a 1-5 rubric) or judge (the "
                   "hallucination flag). Default: every question a judge can answer; an A/B campaign's choice is "
                   "judged pairwise.")
@click.option("--criteria", help="The rubric for the Likert score and A/B verdicts (default: the campaign's "
                                 "guidelines, else a general quality rubric).")
@click.option("--judge", "judge_model",
              help="The judge: a local folder, a hub id or openai:http://HOST:PORT/v1 (default: EVALTUNE_JUDGE_MODEL).")
@click.option("--judge-model-name", help="The model name the --judge endpoint serves.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def agreement(campaign_id: int, scorer: str | None, criteria: str | None, judge_model: str | None,
              judge_model_name: str | None, as_json: bool) -> None:
    """Score a campaign's rated outputs with the judge and compare it with the annotators' consensus, per question:
    Krippendorff's alpha and Spearman's rho with bootstrap 95% intervals, and a confusion table for flags.

    The judge's answers are stored with the outputs (the app's Agreement page then shows the judge as one more
    rater) and its calls are cached: running this again asks the judge nothing new.
    """
    from evaltune.reports.judge_agreement import agreement_record, agreement_text, plan_judging

    spec = _judge_spec(judge_model, judge_model_name)
    with _opened_store() as store:
        with store.session_scope() as session:
            plan = plan_judging(session, campaign_id, scorer, criteria)
        report, summary = _judge_and_compare(store, plan, _required(spec))
    if as_json:
        record = agreement_record(report)
        if summary is not None:
            record["pairwise"] = summary.as_dict()
        click.echo(json.dumps(record, indent=2, default=str))
        return
    click.echo(agreement_text(report))
    if summary is not None:
        click.echo(_summary_line(summary))


def _judge_spec(judge_model: str | None, judge_model_name: str | None) -> JudgeSpec | None:
    from evaltune.harness.judges import configured_judge, judge_from_options

    with user_errors():
        return configured_judge(None, judge_from_options(judge_model, judge_model_name))


def _required(spec: JudgeSpec | None) -> JudgeSpec:
    """The judge named, checked after the runs or campaign (so a wrong id is reported first)."""
    if spec is None:
        raise UserError("no judge to ask: pass --judge (a local folder, a hub id, or openai:http://HOST:PORT/v1 "
                        "with --judge-model-name) or set EVALTUNE_JUDGE_MODEL")
    return spec


@contextmanager
def _opened_store() -> Iterator[Store]:
    """The store, closed afterwards; a report's refusal (unknown run or campaign) becomes a user error."""
    from evaltune.db.engine import open_store
    from evaltune.reports.load import ReportError

    with user_errors():
        store = open_store()
    try:
        yield store
    except ReportError as error:
        raise UserError(str(error)) from error
    finally:
        store.close()


@contextmanager
def _loaded(spec: JudgeSpec) -> Iterator[Judge]:
    from evaltune.harness.judges import load_judge

    with user_errors():
        judge = load_judge(spec)
    try:
        yield judge
    finally:
        judge.close()


def _chunks(store: Store, judge: Judge, items: Sequence[T]) -> Iterator[Sequence[T]]:
    """``items`` in chunks of ``CHUNK``, each asked inside its own transaction with the judge's cache on it, so the
    judge's answers are kept as it goes and no lock is held long."""
    from evaltune.harness.judges.cache import JudgeCache

    for start in range(0, len(items), CHUNK):
        with store.session_scope() as session, user_errors():
            judge.cache = JudgeCache(session)  # the answers of this chunk commit with it
            yield items[start : start + CHUNK]


def _judge_and_compare(store: Store, plan: JudgingPlan, spec: JudgeSpec
                       ) -> tuple[JudgeAgreement, PairSummary | None]:
    """Ask the judge about every rated output (a chunk per transaction), store its answers, compare."""
    from evaltune.harness.judges import pairwise_summary
    from evaltune.reports.judge_agreement import judge_agreement, store_judge_scores

    answers: dict[str, list[JudgeScore]] = {judged.scorer: [] for judged in plan.questions}
    verdicts: list[PairVerdict] = []
    with _loaded(spec) as judge:
        for chunk in _chunks(store, judge, plan.outputs):
            for judged in plan.questions:
                scores, said = _ask(judge, judged, plan, chunk)
                answers[judged.scorer] += scores
                verdicts += said
    with store.session_scope() as session:
        scorers = {}
        for judged in plan.questions:
            scorer_id = plan.scorer_id(judged, spec.identity())
            store_judge_scores(session, scorer_id, answers[judged.scorer], plan.details(judged, judge.describe()))
            scorers[judged.question] = scorer_id
        criteria = {judged.scorer: plan.criteria[judged.scorer] for judged in plan.questions}
        report = judge_agreement(session, plan.campaign_id, scorers, judge.describe(), criteria)
    return report, pairwise_summary(verdicts) if verdicts else None


def _ask(judge: Judge, judged: JudgedQuestion, plan: JudgingPlan, outputs: Sequence[RatedOutput]
         ) -> tuple[list[JudgeScore], list[PairVerdict]]:
    """The judge's answers to ``judged`` for ``outputs`` as the values stored (and the A/B verdicts)."""
    from evaltune.harness.judges import PairRequest
    from evaltune.reports.judge_agreement import JudgeScore, rubric_value

    criteria = plan.criteria[judged.scorer]
    if judged.scorer == "pairwise":
        verdicts = judge.pairwise([PairRequest(o.question, o.answer, o.other_answer or "", criteria, o.reference,
                                               o.context) for o in outputs])
        return [JudgeScore(o, {"a": 1.0, "tie": 0.5, "b": 0.0}[v.winner],
                           {"winner": v.winner, "consistent": v.consistent, "first_order": v.first_order,
                            "second_order": v.second_order})
                for o, v in zip(outputs, verdicts, strict=True)], verdicts
    graded = judge.rubric([plan.rubric_request(judged, output) for output in outputs])
    return [JudgeScore(output, rubric_value(judged, grade), {"method": grade.method, "score": grade.score,
                                                             "reason": grade.reason})
            for output, grade in zip(outputs, graded, strict=True)], []


def _summary_line(summary: PairSummary) -> str:
    bias = "n/a" if summary.position_bias is None else f"{summary.position_bias:+.2f}"
    return (f"\npairwise verdicts: {summary.pairs} pairs, the first output won {summary.wins_a}, the second "
            f"{summary.wins_b}, {summary.ties} ties; {summary.consistent} held in both orders; position bias "
            f"{bias} (the share of answers that picked the output shown first, minus one half)")


@judge.command("pairwise")
@click.argument("baseline_run", type=int)
@click.argument("candidate_run", type=int)
@click.option("--criteria", help="What makes an answer better (default: helpful, correct and clear).")
@click.option("--judge", "judge_model",
              help="The judge: a local folder, a hub id or openai:http://HOST:PORT/v1 (default: EVALTUNE_JUDGE_MODEL).")
@click.option("--judge-model-name", help="The model name the --judge endpoint serves.")
@click.option("--limit", type=click.IntRange(min=1), help="Judge only the first N shared items (suite order).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def pairwise(baseline_run: int, candidate_run: int, criteria: str | None, judge_model: str | None,
             judge_model_name: str | None, limit: int | None, as_json: bool) -> None:
    """Ask the judge which output is better, the baseline's or the candidate's, on every item both runs share
    (each run's first sample), once in each order: the candidate's win rate with a Wilson 95% interval, ties,
    how many verdicts held in both orders, the judge's position bias, and the items the candidate lost.

    Identical outputs (whitespace aside) are a tie without asking. Only the judge's calls are stored (cached):
    running this again asks the judge nothing new.
    """
    from evaltune.harness.judges import pairwise_summary
    from evaltune.harness.judges.pairwise import DEFAULT_CRITERIA
    from evaltune.reports.judge_pairwise import judged_pairs, pair_outputs, pairwise_record, pairwise_text

    spec = _judge_spec(judge_model, judge_model_name)
    criteria = criteria or DEFAULT_CRITERIA
    with _opened_store() as store:
        with store.session_scope() as session:
            plan = pair_outputs(session, baseline_run, candidate_run, limit)
        verdicts, described = _judge_pairs(store, plan, _required(spec), criteria)
    position = pairwise_summary(verdicts).as_dict() if verdicts else None
    result = judged_pairs(plan, verdicts, position, described, criteria)
    click.echo(json.dumps(pairwise_record(result), indent=2) if as_json else pairwise_text(result))


def _judge_pairs(store: Store, plan: PairingPlan, spec: JudgeSpec, criteria: str) -> tuple[list[PairVerdict], str]:
    """The judge's verdict on each of ``plan.to_judge`` (baseline as "a"), a chunk per transaction so that its
    cached answers are kept as it goes; and how the judge describes itself."""
    from evaltune.harness.judges import PairRequest

    verdicts: list[PairVerdict] = []
    with _loaded(spec) as judge:
        for chunk in _chunks(store, judge, plan.to_judge):
            verdicts += judge.pairwise([PairRequest(p.question, p.baseline, p.candidate, criteria, p.reference,
                                                    p.context) for p in chunk])
        return verdicts, judge.describe()
