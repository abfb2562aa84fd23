"""Admin adjudication: see a disagreed item (its prompt, outputs and every rating, in words) and record the final
decision per question."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from evaltune.db.base import utcnow
from evaltune.db.evaluation import Generation, SuiteItem
from evaltune.db.queries import dialect_insert
from evaltune.db.ratings import Adjudication, CampaignItem, Rating, User
from evaltune.feedback_ui.agreement_data import answer_of, questions
from evaltune.feedback_ui.answers import LIKERT_LABELS
from evaltune.feedback_ui.auth import Account, require_role
from evaltune.feedback_ui.rating_task import prompt_text
from evaltune.feedback_ui.spans_view import merged_spans, span_texts
from evaltune.reports.campaign_answers import PAIR_QUESTIONS, SINGLE_QUESTIONS

_ALLOWED: dict[str, set[Any]] = {
    "likert": {1, 2, 3, 4, 5},
    "thumbs": {True, False},
    "hallucination": {True, False},
    "bias": {True, False},
    "unsafe": {True, False},
    "choice": {"first", "second", "tie", "both_bad"},
}


@dataclass(frozen=True)
class RatingInWords:
    """One annotator's answers as a sentence ("4 good, hallucination: yes — span: «…»") and the spans they
    marked in the first output."""

    annotator: str
    words: str
    spans: list[Any]


@dataclass(frozen=True)
class ItemRatings:
    """One campaign item for an admin: what was asked (prompt, context, references), its outputs (with their
    runs), each annotator's answers as stored and in words, and the decision so far."""

    campaign_item_id: int
    outputs: list[tuple[str, str]]  # (label naming the run, output text); first = the item's generation
    ratings: list[dict[str, Any]]
    decision: dict[str, Any] | None
    note: str
    item_key: str = ""
    prompt: str = ""
    context: str | None = None
    references: list[str] = field(default_factory=list)
    pairwise: bool = False
    said: list[RatingInWords] = field(default_factory=list)

    @property
    def run_labels(self) -> list[str]:
        """'first (run 3)', 'second (run 4)': how answers about a side name it."""
        return [label for label, _ in self.outputs]

    @property
    def marked_spans(self) -> list[Any]:
        """Every annotator's spans on the first output, together (drawn merged)."""
        return merged_spans(rating.spans for rating in self.said)


def _yes_no(value: object) -> str:
    return "yes" if value else "no"


def answer_words(question: str, value: Any, run_labels: list[str] | None = None) -> str:
    """One answer in words: likert 4 -> '4 good', hallucination True -> 'hallucination: yes', choice 'first' ->
    'first (run 3) is better', tie -> 'tie'."""
    if question == "likert":
        return LIKERT_LABELS.get(value, str(value))
    if question == "thumbs":
        return "thumbs up" if value else "thumbs down"
    if question == "choice":
        sides = run_labels or ["first", "second"]
        if value in ("first", "second"):
            return f"{sides[0 if value == 'first' else 1]} is better"
        return {"tie": "tie", "both_bad": "both bad"}.get(value, str(value))
    return f"{question}: {_yes_no(value)}"


def decision_words(decision: dict[str, Any] | None, run_labels: list[str] | None = None) -> str:
    """An admin's decision in words, in the order the questions are asked; 'no decision yet' when empty."""
    if not decision:
        return "no decision yet"
    order = [*SINGLE_QUESTIONS, *PAIR_QUESTIONS]
    return ", ".join(answer_words(q, decision[q], run_labels) for q in sorted(decision, key=order.index))


def _quote(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return f"«{text if len(text) <= limit else text[:limit - 1] + '…'}»"


def rating_words(row: dict[str, Any], output: str, run_labels: list[str] | None = None) -> str:
    """One rating row (as ``item_ratings`` reads it) in words, the way an admin would say it."""
    if "choice" in row:
        return answer_words("choice", row["choice"], run_labels)
    parts = [answer_words("likert", row["likert"])] if row.get("likert") is not None else []
    if row.get("thumbs") is not None:
        parts.append(answer_words("thumbs", row["thumbs"]))
    if row.get("hallucination") is not None:
        said = answer_words("hallucination", row["hallucination"])
        quoted = span_texts(output, row.get("spans")) or ([row["hallucinated_span"]] if row.get("hallucinated_span")
                                                          else [])
        if row["hallucination"] and quoted:
            said += " — span: " + " … ".join(_quote(text) for text in quoted)
            if row.get("spans"):
                said += " (highlighted in the output)"
        parts.append(said)
    parts += [f"{flag}: yes" for flag in ("bias", "unsafe") if row.get(flag)]
    parts += [f"{name}: {_quote(row[name])}" for name in ("correction", "comment") if row.get(name)]
    return ", ".join(parts) or "no answer"


def item_ratings(session: Session, actor: Account, campaign_item_id: int) -> ItemRatings:
    """Everything an admin needs to adjudicate one item (raises ``LookupError`` if there is no such item)."""
    require_role(actor, "admin")
    item = session.get(CampaignItem, campaign_item_id)
    if item is None:
        raise LookupError(f"no campaign item {campaign_item_id}")
    suite_item = session.get(SuiteItem, item.item_id)
    assert suite_item is not None  # a foreign key
    ids = [item.generation_id] + ([item.other_generation_id] if item.other_generation_id else [])
    found = {gid: (run_id, text) for gid, run_id, text in session.execute(
        select(Generation.id, Generation.run_id, Generation.output).where(Generation.id.in_(ids)))}
    labels = ["first", "second"]
    outputs = [(f"{labels[i]} (run {found[gid][0]})", found[gid][1]) for i, gid in enumerate(ids)]
    pairwise = item.other_generation_id is not None
    asked = list(questions(pairwise))
    columns = [answer_of(q, Rating, CampaignItem).label(q) for q in asked]
    rows = session.execute(
        select(User.name.label("annotator"), *columns, Rating.hallucinated_span, Rating.spans, Rating.correction,
               Rating.comment)
        .join(User, User.id == Rating.user_id)
        .join(CampaignItem, CampaignItem.id == Rating.campaign_item_id)
        .where(Rating.campaign_item_id == campaign_item_id, Rating.skipped.is_(False))
        .order_by(Rating.id)
    )
    ratings = [dict(row._mapping) for row in rows]
    run_labels = [label for label, _ in outputs]
    said = [RatingInWords(row["annotator"], rating_words(row, outputs[0][1] or "", run_labels),
                          list(row["spans"] or [])) for row in ratings]
    existing = session.execute(
        select(Adjudication).where(Adjudication.campaign_item_id == campaign_item_id)
    ).scalar_one_or_none()
    return ItemRatings(campaign_item_id, outputs, ratings, existing.decision if existing else None,
                       existing.note if existing else "", item_key=suite_item.key,
                       prompt=prompt_text(suite_item.input), context=suite_item.context,
                       references=[str(ref) for ref in suite_item.references or []], pairwise=pairwise, said=said)


def adjudicate(session: Session, actor: Account, campaign_item_id: int, decision: dict[str, Any], note: str = ""
               ) -> None:
    """Record (or replace) the final decision on an item and mark its ratings as adjudicated by ``actor``.

    Datasets built afterwards (``evaltune data build``) use the decision in place of the annotators' answers to
    the questions it settles (likert, thumbs, hallucination, choice) and count the item as adjudicated.

    Raises ``ValueError`` for a question the item does not ask or a value it does not allow.
    """
    require_role(actor, "admin")
    item = session.get(CampaignItem, campaign_item_id)
    if item is None:
        raise LookupError(f"no campaign item {campaign_item_id}")
    asked = questions(item.other_generation_id is not None)
    for question, value in decision.items():
        if question not in asked or value not in _ALLOWED[question]:
            raise ValueError(f"{question}={value!r} is not an answer this item allows")
    values = {"user_id": actor.id, "decision": dict(decision), "note": note.strip(), "created_at": utcnow()}
    stmt = dialect_insert(session, Adjudication).values(campaign_item_id=campaign_item_id, **values)
    session.execute(stmt.on_conflict_do_update(index_elements=["campaign_item_id"], set_=values))
    session.execute(
        update(Rating).where(Rating.campaign_item_id == campaign_item_id).values(adjudicated_by=actor.id)
        .execution_options(synchronize_session=False)
    )

