"""What Label Studio and Argilla exchange with a rating campaign: its tasks out, and answers back in as ratings.

Out: one ``CampaignTask`` per campaign item: the prompt, the reference shown to annotators ("I don't know" for an
item whose right answer is to abstain) and the output, or outputs A and B for a pairwise campaign. A is always the
campaign item's first generation and B its other one: the other tool shows them as they are, and an imported
choice is read back the same way.

In: ``ImportedAnswer`` values, one per (task, annotator), checked all together by ``store_answers`` before anything
is written: the campaign item must be this campaign's, the annotator a known active annotator (or admin) who has
not rated the item yet, spans must be character offsets inside the output. The first problem raises
``ExchangeError`` naming the task and the fix, and the caller's transaction stores nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from evaltune.db.evaluation import Generation, SuiteItem
from evaltune.db.ratings import Campaign, CampaignItem, Rating, User
from evaltune.feedback_ui.answers import CHOICES, PairAnswer, SingleAnswer, check_spans, quote, spans_shape
from evaltune.feedback_ui.rating_task import prompt_text
from evaltune.textfiles import FileProblem, json_lines, read_text

ABSTAIN_REFERENCE = "I don't know"  # shown as the right answer of an item that expects abstention
HIDDEN_REFERENCE = "(hidden in this campaign)"  # the campaign hides reference answers from its annotators
RATER_ROLES = ("annotator", "admin")


class ExchangeError(ValueError):
    """A file from another tool that cannot be taken as it is: the message names the file's task and the fix."""


@dataclass(frozen=True)
class CampaignTask:
    """One campaign item as another tool shows it. ``outputs`` is [output] or [A, B]."""

    campaign_id: int
    campaign_item_id: int
    item_key: str
    prompt: str
    context: str | None
    references: list[str]
    outputs: list[str]


@dataclass(frozen=True)
class ImportedAnswer:
    """One annotator's answer to one task, as read from another tool's file, before it is checked.

    ``task`` names the task as that tool does ("task 12", "record 3f2a…") for messages. ``choice`` is a, b, tie or
    both_bad with A the campaign item's first generation. ``spans`` are [start, end) offsets into the output."""

    task: str
    campaign_item_id: int
    annotator: str
    likert: int | None = None
    hallucination: bool | None = None
    spans: list[list[int]] = field(default_factory=list)
    correction: str | None = None
    comment: str | None = None
    choice: str | None = None


def campaign_or_error(session: Session, campaign_id: int) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise ExchangeError(f"no campaign {campaign_id}; see 'evaltune campaigns list'")
    return campaign


def shown_references(item: SuiteItem) -> list[str]:
    """The right answers an annotator is told: the item's references, or "I don't know" for an abstention item."""
    references = [str(reference) for reference in item.references or []]
    return references or ([ABSTAIN_REFERENCE] if item.expect_abstention else [])


def campaign_tasks(session: Session, campaign_id: int) -> list[CampaignTask]:
    """Every item of the campaign in its order, with the texts another tool needs to show it (no reference
    answers when the campaign hides them from its annotators)."""
    hidden = campaign_or_error(session, campaign_id).hide_references
    rows = session.execute(
        select(CampaignItem, SuiteItem).join(SuiteItem, SuiteItem.id == CampaignItem.item_id)
        .where(CampaignItem.campaign_id == campaign_id).order_by(CampaignItem.position)
    ).all()
    ids = {g for item, _ in rows for g in (item.generation_id, item.other_generation_id) if g is not None}
    texts = dict(session.execute(select(Generation.id, Generation.output).where(Generation.id.in_(ids))).all())
    tasks = []
    for item, suite_item in rows:
        outputs = [texts[item.generation_id]]
        if item.other_generation_id is not None:
            outputs.append(texts[item.other_generation_id])
        tasks.append(CampaignTask(campaign_id, item.id, suite_item.key, prompt_text(suite_item.input),
                                  suite_item.context, [HIDDEN_REFERENCE] if hidden else shown_references(suite_item),
                                  outputs))
    return tasks


def parse_user_map(pairs: Iterable[str]) -> dict[str, str]:
    """``--user-map ID=NAME`` values as {the other tool's user id or e-mail: our user name}."""
    mapping = {}
    for pair in pairs:
        key, sep, name = pair.partition("=")
        if not sep or not key.strip() or not name.strip():
            raise ExchangeError(f"--user-map {pair!r}: write THEIR_ID=NAME, e.g. 10=alice or "
                                "3f2a-...=alice (NAME as in 'evaltune users list')")
        mapping[key.strip()] = name.strip()
    return mapping


def resolve_annotator(session: Session, candidates: Sequence[str], user_map: Mapping[str, str], task: str) -> str:
    """Our user name for the other tool's user, tried in order: ``user_map`` entries for any of ``candidates``
    (its id, e-mail, user name), then a user of that name, then the local part of an e-mail address."""
    names = [user_map[c] for c in candidates if c in user_map]
    names += [c for c in candidates if c] + [c.split("@", 1)[0] for c in candidates if "@" in c]
    for name in names:
        if session.execute(select(User.id).where(User.name == name)).first() is not None:
            return name
    shown = ", ".join(repr(c) for c in candidates if c) or "no user"
    raise ExchangeError(f"{task}: annotated by {shown}, who is not a user here; add them with 'evaltune users add "
                        f"NAME --role annotator' or map them with --user-map {next(iter(candidates), 'ID')}=NAME; "
                        "nothing was stored")


def _checked_spans(answer: ImportedAnswer, output: str) -> list[list[int]]:
    """The answer's spans, sorted, after the checks the rating form's are held to (``feedback_ui.answers``)."""
    try:
        spans = spans_shape([[int(start), int(end)] for start, end in answer.spans])
        check_spans(output, spans)
    except ValueError as error:
        raise ExchangeError(f"{answer.task}: {error}; nothing was stored") from None
    return [[start, end] for start, end in spans]


def _rating(answer: ImportedAnswer, item: CampaignItem, campaign: Campaign, output: str, user_id: int) -> Rating:
    rating = Rating(campaign_item_id=item.id, user_id=user_id)
    if campaign.pairwise:
        if answer.choice not in CHOICES:
            raise ExchangeError(f"{answer.task}: no A/B choice from {answer.annotator}; answer A, B, tie or both "
                                "bad (or leave the annotation out of the file); nothing was stored")
        pair = PairAnswer(answer.choice, answer.comment)
        rating.side_a_generation_id, rating.side_b_generation_id = item.generation_id, item.other_generation_id
        rating.choice, rating.comment = pair.choice, pair.comment
        return rating
    spans = _checked_spans(answer, output)
    quoted = quote(output, [(start, end) for start, end in spans]) or None
    hallucination = bool(spans) if answer.hallucination is None else answer.hallucination
    try:
        single = SingleAnswer(likert=answer.likert or 0, hallucination=hallucination, hallucinated_span=quoted,
                              correction=answer.correction, comment=answer.comment)
    except ValueError as error:
        raise ExchangeError(f"{answer.task} ({answer.annotator}): {error}; nothing was stored") from None
    rating.generation_id = item.generation_id
    rating.likert, rating.hallucination = single.likert, single.hallucination
    rating.hallucinated_span, rating.spans = single.hallucinated_span, spans if hallucination and spans else None
    rating.correction, rating.comment = single.correction, single.comment
    return rating


def store_answers(session: Session, campaign_id: int, answers: Sequence[ImportedAnswer]) -> list[int]:
    """Check every answer, then store each as a rating of the campaign counted toward its item's overlap.
    Returns the new ratings' ids. Raises ``ExchangeError`` at the first problem (the caller rolls back)."""
    campaign = campaign_or_error(session, campaign_id)
    items = {item.id: item for item in session.execute(
        select(CampaignItem).where(CampaignItem.campaign_id == campaign_id)).scalars()}
    users = {user.name: user for user in session.execute(select(User)).scalars()}
    seen: set[tuple[int, int]] = set()
    ratings = []
    for answer in answers:
        item = items.get(answer.campaign_item_id)
        if item is None:
            raise ExchangeError(f"{answer.task}: campaign item {answer.campaign_item_id} is not in campaign "
                                f"{campaign_id}; import the file into the campaign it was exported from "
                                "(its tasks carry campaign_id); nothing was stored")
        user = users[answer.annotator]
        if not user.active or user.role not in RATER_ROLES:
            raise ExchangeError(f"{answer.task}: {user.name} is {'deactivated' if not user.active else 'a '+user.role}"
                                f"; only active annotators and admins rate ('evaltune users' changes that); "
                                "nothing was stored")
        key = (item.id, user.id)
        if key in seen or session.execute(select(Rating.id).where(Rating.campaign_item_id == item.id,
                                                                  Rating.user_id == user.id)).first():
            raise ExchangeError(f"{answer.task}: {user.name} has already rated campaign item {item.id}; leave that "
                                "annotation out of the file (was it imported before?); nothing was stored")
        seen.add(key)
        output = session.execute(select(Generation.output).where(Generation.id == item.generation_id)).scalar_one()
        ratings.append(_rating(answer, item, campaign, output, user.id))
        item.ratings_done += 1
    session.add_all(ratings)
    session.flush()
    return [rating.id for rating in ratings]


def load_export(path: Path, *, tool: str, fix: str) -> list[Any]:
    """The list of records in another tool's export: a JSON list, or JSON Lines for a ``.jsonl`` file. Raises
    ``ExchangeError`` naming the file (and the line) with ``fix`` when it is not JSON or not a list."""
    try:
        text = read_text(path)
        if path.suffix.lower() == ".jsonl":
            return [value for _, value in json_lines(text, str(path))]
        loaded = json.loads(text)
    except FileProblem as problem:
        raise ExchangeError(str(problem)) from None
    except json.JSONDecodeError as error:
        raise ExchangeError(f"{path}:{error.lineno}: not JSON ({error.msg}); {fix}") from None
    if not isinstance(loaded, list):
        raise ExchangeError(f"{path}: {tool} is a JSON list, not {type(loaded).__name__}")
    return loaded
