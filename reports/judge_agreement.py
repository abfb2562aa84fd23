"""Judge vs annotators: how far a judge model's scores of a campaign's rated outputs agree with the annotators'
consensus, per question, so that a team learns whether it may let the judge rate instead, and where not.

The judge answers each question its own way: the Likert score by a G-Eval rubric on the same 1-5 scale
(``llm-rubric``), the hallucination flag by whether every claim is supported (the ``judge`` scorer's question),
an A/B choice by a pairwise verdict asked in both orders. Its answers are stored as ``Score`` rows of the rated
generations under a scorer id that names the judge's criteria (``judge.llm-rubric.<criteria>.<digest>``), so
the app's Agreement page shows the judge as one more rater and a second run asks the judge nothing new.
The judge itself lives in ``harness`` (which reports may not import): its answers arrive here as plain values.

Per question: Krippendorff's alpha between the judge and the consensus (ordinal for Likert, nominal for flags
and choices), Spearman's rho between the judge's score and the annotators' mean answer, both with seeded
bootstrap 95% intervals, the annotators' alpha among themselves for scale, and a confusion table for the
nominal questions. The consensus of an item is an admin's adjudicated decision where there is one, else the
median Likert score, or the majority flag or choice (an even split has no consensus and is left out).
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from evaltune.db import queries
from evaltune.db.evaluation import Generation, Score, SuiteItem
from evaltune.db.ratings import Campaign, CampaignItem, Rating
from evaltune.metrics.judging import RubricRequest, RubricScore
from evaltune.metrics.records import Example
from evaltune.metrics.scorers.judges import FACTUALLY_RIGHT, FAITHFUL_TO_SOURCE, judge_request
from evaltune.metrics.stats.agreement import Agreement, Level, alpha_with_ci, krippendorff_alpha, spearman_with_ci
from evaltune.reports.campaign_answers import decisions, value_counts
from evaltune.reports.load import ReportError
from evaltune.reports.outputs import question_of

SCHEMA_VERSION = 1
SCORER_PREFIX = "judge."
SCALE = 5  # the Likert scale annotators rate on: the rubric judge uses the same one
DEFAULT_CRITERIA = ("Overall quality: the answer is correct, answers the question asked, and is supported by the "
                    "context or reference when one is given; 1 = useless or wrong, 5 = fully correct and helpful.")
PAIRWISE_CRITERIA = ("Which answer is better: correct, answering the question asked, and supported by the context or "
                     "reference when one is given?")
# The `judge` scorer's own question (a run's judge scores and these are the same grades of the same outputs).
FAITHFUL_CRITERIA = f"{FAITHFUL_TO_SOURCE} Without a context or reference: {FACTUALLY_RIGHT}"


@dataclass(frozen=True)
class JudgedQuestion:
    """How the judge answers one annotator question: with which scorer, on which level of measurement."""

    question: str  # the annotators' question: likert, hallucination, choice
    scorer: str  # llm-rubric, judge, pairwise
    level: Level


JUDGED = (JudgedQuestion("likert", "llm-rubric", "ordinal"), JudgedQuestion("hallucination", "judge", "nominal"),
          JudgedQuestion("choice", "pairwise", "nominal"))
SINGLE_SCORERS = ("llm-rubric", "judge")  # what --scorer may name
PREFERENCE = {"first": 1.0, "tie": 0.0, "second": -1.0}  # an A/B answer as a number, for rho


@dataclass(frozen=True)
class RatedOutput:
    """One campaign item that annotators rated, as the judge is shown it (A/B: ``other_answer`` is the second)."""

    campaign_item_id: int
    run_id: int
    item_id: int
    generation_id: int
    question: str
    answer: str
    references: tuple[str, ...]
    context: str | None
    other_run_id: int | None = None
    other_answer: str | None = None

    @property
    def reference(self) -> str | None:
        return "\n".join(self.references) or None


@dataclass(frozen=True)
class JudgingPlan:
    """What ``judge agreement`` asks the judge: the campaign's rated outputs, the questions, their criteria."""

    campaign_id: int
    campaign_name: str
    pairwise: bool
    outputs: list[RatedOutput]
    questions: list[JudgedQuestion]
    criteria: dict[str, str]  # scorer -> its criteria text

    @property
    def runs(self) -> list[int]:
        """For an A/B campaign, the two runs compared (first, second); else none."""
        return [self.outputs[0].run_id, self.outputs[0].other_run_id or 0] if self.pairwise and self.outputs else []

    def scorer_id(self, judged: JudgedQuestion, judge_identity: str) -> str:
        """The stored scorer id of the judge's answers to ``judged``: readable criteria plus a digest of everything
        that changes the answers (the judge, the criteria, the scale, for A/B the runs compared)."""
        criteria = self.criteria[judged.scorer]
        digest = hashlib.sha256(json.dumps([judge_identity, judged.scorer, criteria, SCALE, self.runs]).encode())
        slug = "-".join(re.findall(r"[a-z0-9]+", criteria.lower()))[:40].strip("-") or "criteria"
        return f"{SCORER_PREFIX}{judged.scorer}.{slug}.{digest.hexdigest()[:10]}"

    def rubric_request(self, judged: JudgedQuestion, output: RatedOutput) -> RubricRequest:
        """What the judge is asked about ``output`` for a single-output question: the Likert rubric on the 1-5
        scale, or the ``judge`` scorer's own faithfulness question."""
        if judged.scorer == "judge":
            return judge_request(Example(str(output.item_id), output.question, output.answer, output.references,
                                         output.context))
        return RubricRequest(output.question, output.answer, self.criteria[judged.scorer], SCALE, output.reference,
                             output.context)

    def details(self, judged: JudgedQuestion, judge: str) -> dict[str, Any]:
        """What every stored answer to ``judged`` says about how it was asked (the app's Agreement page reads it)."""
        return {"question": judged.question, "judge": judge, "criteria": self.criteria[judged.scorer],
                "scale": SCALE, **({"runs": self.runs} if self.pairwise else {})}


@dataclass(frozen=True)
class JudgeScore:
    """The judge's answer for one rated output, as stored: Likert 1-5, P(hallucinated) 0-1, or A/B 1/0.5/0 (the
    first output / tie / the second output preferred); None when the judge gave no usable answer."""

    output: RatedOutput
    value: float | None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class QuestionResult:
    """Judge vs the annotators' consensus on one question."""

    question: str
    level: Level
    scorer: str  # the stored scorer id
    items: int  # items with both a judge answer and a consensus
    rated: int  # items annotators answered this question for
    judged: int  # of those, the items the judge gave an answer for
    split: int  # items whose annotators split evenly: no consensus, left out
    alpha: Agreement  # judge vs consensus
    rho: Agreement  # judge's score vs the annotators' mean answer
    annotators: Agreement  # the annotators among themselves
    with_judge: float | None  # alpha of every annotator plus the judge as one more rater
    confusion: dict[tuple[Hashable, Hashable], int]  # (judge, consensus) -> items; nominal questions only


@dataclass(frozen=True)
class JudgeAgreement:
    campaign_id: int
    campaign_name: str
    judge: str
    criteria: dict[str, str]
    results: list[QuestionResult]
    runs: list[int] = field(default_factory=list)  # the campaign's runs: A/B "first" is the first one's output


def plan_judging(session: Session, campaign_id: int, scorer: str | None = None, criteria: str | None = None
                 ) -> JudgingPlan:
    """The rated outputs of a campaign and what to ask the judge about them. ``scorer`` keeps one single-output
    question (llm-rubric: Likert, judge: the hallucination flag); ``criteria`` replaces the rubric's (default: the
    campaign's guidelines, else ``DEFAULT_CRITERIA`` or ``PAIRWISE_CRITERIA``). Raises ``ReportError`` naming the
    fix for an unknown campaign, one nobody has rated yet, or ``--scorer judge`` on an A/B campaign (no flag)."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise ReportError(f"--campaign: no campaign {campaign_id}; 'evaltune campaigns list' shows them")
    if scorer is not None and scorer not in SINGLE_SCORERS:
        raise ReportError(f"--scorer: '{scorer}' is not one of {', '.join(SINGLE_SCORERS)}")
    if campaign.pairwise and scorer == "judge":
        raise ReportError(f"--scorer judge: campaign {campaign_id} is A/B, with no hallucination flag to compare; "
                          "leave --scorer out (the judge then gives pairwise verdicts)")
    outputs = rated_outputs(session, campaign)
    if not outputs:
        raise ReportError(f"--campaign: campaign {campaign_id} ({campaign.name}) has no ratings yet; annotators rate "
                          "it in the app ('evaltune ui'), then run this again")
    wanted = ["pairwise"] if campaign.pairwise else [s for s in SINGLE_SCORERS if scorer in (None, s)]
    given = (criteria or "").strip() or campaign.guidelines.strip()
    return JudgingPlan(campaign.id, campaign.name, campaign.pairwise, outputs,
                       [judged for judged in JUDGED if judged.scorer in wanted],
                       {"llm-rubric": given or DEFAULT_CRITERIA, "pairwise": given or PAIRWISE_CRITERIA,
                        "judge": FAITHFUL_CRITERIA})


def rated_outputs(session: Session, campaign: Campaign) -> list[RatedOutput]:
    """The campaign's items with at least one (unskipped) rating, in campaign order."""
    rated = exists().where(Rating.campaign_item_id == CampaignItem.id, Rating.skipped.is_(False))
    stmt = (select(CampaignItem, SuiteItem, Generation)
            .join(SuiteItem, SuiteItem.id == CampaignItem.item_id)
            .join(Generation, Generation.id == CampaignItem.generation_id)
            .where(CampaignItem.campaign_id == campaign.id, rated)
            .order_by(CampaignItem.position))
    rows = session.execute(stmt).all()
    others = {gen.id: gen for gen in session.execute(select(Generation).where(Generation.id.in_(
        [item.other_generation_id for item, _, _ in rows if item.other_generation_id]))).scalars()}
    outputs = []
    for item, suite_item, generation in rows:
        other = others.get(item.other_generation_id) if item.other_generation_id else None
        outputs.append(RatedOutput(
            item.id, generation.run_id, suite_item.id, generation.id, question_of(suite_item.input,
                                                                                  suite_item.item_metadata),
            generation.output, tuple(str(ref) for ref in suite_item.references or []), suite_item.context,
            other.run_id if other else None, other.output if other else None))
    return outputs


def rubric_value(judged: JudgedQuestion, grade: RubricScore) -> float | None:
    """The value stored for a rubric grade: the Likert score itself, or for the flag what the ``judge`` scorer
    stores, 1 - the normalized faithfulness grade (1 = made up)."""
    if judged.scorer == "judge":
        return None if grade.normalized is None else 1.0 - grade.normalized
    return grade.score


def store_judge_scores(session: Session, scorer: str, scores: Sequence[JudgeScore], describe: Mapping[str, Any]
                       ) -> None:
    """Store the judge's answers as ``Score`` rows of the rated generations (replacing the same scorer's);
    ``describe`` (the judge, the question, the criteria) goes into every row's details."""
    queries.insert_scores(session, [
        {"run_id": score.output.run_id, "generation_id": score.output.generation_id, "item_id": score.output.item_id,
         "scorer": scorer, "value": score.value, "details": {**describe, **score.details}}
        for score in scores])


def stored_judges(session: Session, campaign_id: int) -> dict[str, dict[str, Any]]:
    """The judges whose answers are stored for this campaign's outputs: scorer id -> how they were asked
    (``question``, ``judge``, ``criteria``), oldest first. A/B verdicts count only for the same two runs."""
    first = (select(Score.scorer, func.min(Score.id))
             .join(CampaignItem, CampaignItem.generation_id == Score.generation_id)
             .where(CampaignItem.campaign_id == campaign_id, Score.scorer.startswith(SCORER_PREFIX))
             .group_by(Score.scorer))
    ids = [row_id for _, row_id in session.execute(first)]
    campaign = session.get(Campaign, campaign_id)
    runs = [int(run) for run in campaign.run_ids or []] if campaign else []
    found: dict[str, dict[str, Any]] = {}
    for scorer, details in session.execute(select(Score.scorer, Score.details).where(Score.id.in_(ids))
                                           .order_by(Score.id)):
        if isinstance(details, dict) and details.get("question") and details.get("runs", runs) == runs:
            found[scorer] = {key: details.get(key) for key in ("question", "judge", "criteria")}
    return found


def judge_values(session: Session, campaign_id: int, scorer: str) -> dict[int, float]:
    """Campaign item id -> the stored judge value under ``scorer`` (items it gave no answer for left out)."""
    stmt = (select(CampaignItem.id, Score.value)
            .join(Score, Score.generation_id == CampaignItem.generation_id)
            .where(CampaignItem.campaign_id == campaign_id, Score.scorer == scorer, Score.value.is_not(None)))
    return {item_id: float(value) for item_id, value in session.execute(stmt) if value is not None}


def judge_answer(question: str, value: float) -> Hashable:
    """A stored judge value as an annotator's answer to ``question``: the Likert point the score rounds to (half
    up), the flag when P(hallucinated) is over one half, the A/B choice."""
    if question == "likert":
        return min(SCALE, max(1, int(value + 0.5)))
    if question == "hallucination":
        return value > 0.5
    return "first" if value > 0.5 else "second" if value < 0.5 else "tie"


def as_judged(answer: Hashable) -> Hashable:
    """An annotator's answer as compared with the judge's: the judge has no both-bad verdict, so it is a tie."""
    return "tie" if answer == "both_bad" else answer


def _number(question: str, answer: Hashable) -> float:
    if question == "choice":
        return PREFERENCE[str(as_judged(answer))]
    return float(answer)  # type: ignore[arg-type]  # likert is a number, a flag a bool


def consensus(question: str, unit: Mapping[Hashable, int], decided: Hashable | None = None
              ) -> tuple[Hashable | None, float]:
    """(The consensus answer, the annotators' mean answer as a number) for one item. The answer is the
    adjudicated decision where there is one, else the median Likert score or the majority flag or choice (both
    bad counts as a tie); None when the annotators split evenly. The number (for rho) is the decision's, else the
    mean: of the Likert scores, of the flags (the share who flagged), of the choices (first +1, tie 0, second -1)."""
    if decided is not None:
        return as_judged(decided), _number(question, decided)
    answers = [value for value, count in unit.items() for _ in range(count)]
    mean = statistics.fmean(_number(question, a) for a in answers)
    if question == "likert":
        median = statistics.median(float(a) for a in answers)  # type: ignore[arg-type]
        return (int(median) if median.is_integer() else median), mean
    counts = Counter(as_judged(a) for a in answers).most_common()
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return None, mean
    return counts[0][0], mean


def judge_agreement(session: Session, campaign_id: int, scorers: Mapping[str, str], judge: str = "",
                    criteria: Mapping[str, str] | None = None) -> JudgeAgreement:
    """Judge vs annotators for each question in ``scorers`` (question -> the stored judge scorer id)."""
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise ReportError(f"--campaign: no campaign {campaign_id}; 'evaltune campaigns list' shows them")
    levels = {judged.question: judged.level for judged in JUDGED}
    results = [question_result(session, campaign_id, question, levels[question], scorer)
               for question, scorer in scorers.items()]
    return JudgeAgreement(campaign.id, campaign.name, judge, dict(criteria or {}), results,
                          [int(run) for run in campaign.run_ids or []])


def question_result(session: Session, campaign_id: int, question: str, level: Level, scorer: str) -> QuestionResult:
    """Judge vs annotators on one question, from the stored ratings and the judge's stored answers."""
    units = value_counts(session, campaign_id, question)
    decided = decisions(session, campaign_id, question)
    judged = {item: value for item, value in judge_values(session, campaign_id, scorer).items() if item in units}
    pairs, scores, means, split = [], [], [], 0
    for item_id, value in sorted(judged.items()):
        answer, mean = consensus(question, units[item_id], decided.get(item_id))
        scores.append(value)  # rho compares ranks: the stored value ranks outputs as the judge's answer does
        means.append(mean)
        if answer is None:
            split += 1
        else:
            pairs.append((judge_answer(question, value), answer))
    with_judge = [Counter(as_judged(answer) for answer, count in unit.items() for _ in range(count))
                  + Counter([judge_answer(question, judged[item])] if item in judged else [])
                  for item, unit in units.items()]
    confusion = Counter(pairs) if level == "nominal" else Counter()
    return QuestionResult(
        question, level, scorer, len(pairs), len(units), len(judged), split,
        alpha_with_ci([Counter([mine, theirs]) for mine, theirs in pairs], level),
        spearman_with_ci(scores, means), alpha_with_ci(list(units.values()), level),
        krippendorff_alpha(with_judge, level), dict(confusion))


def verdict(result: QuestionResult) -> str:
    """What the numbers mean for replacing annotators, by Krippendorff's thresholds (0.800 reliable, 0.667 the
    lowest for tentative conclusions), read off the lower end of the judge's interval."""
    alpha, low = result.alpha.value, result.alpha.ci_low
    if alpha is None:
        return "not enough items with both a judge answer and a consensus to tell"
    if low is not None and low >= 0.8:
        return "the judge may rate instead of annotators on this question"
    if alpha >= 0.667:
        return "tentative: let the judge rate, but keep annotators on a sample to watch it"
    return "keep annotators: the judge does not agree with them well enough"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _with_ci(estimate: Agreement) -> str:
    if estimate.value is None:
        return "n/a"
    return f"{estimate.value:.3f} [{_fmt(estimate.ci_low)}, {_fmt(estimate.ci_high)}]"


def _label(value: Hashable) -> str:
    return {True: "flagged", False: "not flagged"}.get(value, str(value)) if isinstance(value, bool) else str(value)


def agreement_record(report: JudgeAgreement) -> dict[str, Any]:
    """The report as JSON-ready data (``schema_version`` marks its shape)."""
    def estimate(value: Agreement) -> dict[str, Any]:
        return {"value": value.value, "ci_low": value.ci_low, "ci_high": value.ci_high, "n": value.n}

    return {"schema_version": SCHEMA_VERSION, "campaign": report.campaign_id, "campaign_name": report.campaign_name,
            "judge": report.judge, "criteria": report.criteria, "runs": report.runs,
            "questions": [{"question": r.question, "level": r.level, "scorer": r.scorer, "items": r.items,
                           "rated": r.rated, "judged": r.judged, "split": r.split, "alpha": estimate(r.alpha),
                           "rho": estimate(r.rho),
                           "annotators_alpha": estimate(r.annotators), "alpha_with_judge": r.with_judge,
                           "confusion": [{"judge": _label(mine), "annotators": _label(theirs), "items": count}
                                         for (mine, theirs), count in sorted(r.confusion.items(), key=str)],
                           "verdict": verdict(r)} for r in report.results]}


def _confusion_lines(result: QuestionResult) -> list[str]:
    judge_side = sorted({mine for mine, _ in result.confusion} | {theirs for _, theirs in result.confusion}, key=str)
    width = max(len(_label(v)) for v in judge_side) + 2
    lines = [f"  {result.question}: judge (rows) vs the annotators' consensus (columns)",
             " " * (width + 4) + "".join(f"{_label(v):>{width}}" for v in judge_side)]
    for mine in judge_side:
        counts = "".join(f"{result.confusion.get((mine, theirs), 0):>{width}}" for theirs in judge_side)
        lines.append(f"    {_label(mine):<{width}}{counts}")
    agreed = sum(count for (mine, theirs), count in result.confusion.items() if mine == theirs)
    lines.append(f"    the judge gave the consensus answer on {agreed} of {result.items} items")
    return lines


def agreement_text(report: JudgeAgreement) -> str:
    """The report as a terminal table, one row per question, then the confusion tables and the verdicts."""
    lines = [f"judge agreement: campaign {report.campaign_id} ({report.campaign_name}), judge {report.judge}"]
    lines += [f"criteria ({scorer}): {text}" for scorer, text in report.criteria.items()]
    if len(report.runs) == 2 and any(r.question == "choice" for r in report.results):
        lines.append(f"choice: first is run {report.runs[0]}'s output, second is run {report.runs[1]}'s")
    header = ("question", "items", "judge vs consensus alpha [95% CI]", "Spearman rho [95% CI]",
              "annotators' alpha [95% CI]")
    rows = [(f"{r.question} ({r.level})", str(r.items), _with_ci(r.alpha), _with_ci(r.rho), _with_ci(r.annotators))
            for r in report.results]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines += ["", "  ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=True)).rstrip()]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    for result in report.results:
        left_out = [f"{result.split} items split evenly, with no consensus" if result.split else "",
                    f"no judge answer for {result.rated - result.judged} of {result.rated} rated items"
                    if result.judged < result.rated else ""]
        notes = "; ".join(part for part in left_out if part)
        lines += ["", f"{result.question}: {verdict(result)}" + (f" ({notes})" if notes else "")]
        if result.confusion:
            lines += _confusion_lines(result)
    return "\n".join(lines)
