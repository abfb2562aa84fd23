"""What an annotator sees for one reserved item: the prompt, context, references, guidelines and output(s).

Nothing here names a model or a run: blind A/B depends on it. Every text is returned as plain ``str``;
the page shows it as text (``safe_text.plain``), never as HTML or markdown.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from evaltune.db.evaluation import Generation, SuiteItem
from evaltune.db.ratings import Assignment, Campaign, CampaignItem
from evaltune.feedback_ui.auth import Account, PermissionDenied
from evaltune.feedback_ui.queue import Reservation


@dataclass(frozen=True)
class Task:
    """One item to rate. ``outputs`` has one text, or two for A/B in the order shown (A, B)."""

    assignment_id: int
    campaign_id: int
    campaign_name: str
    pairwise: bool
    guidelines: str
    item_key: str
    prompt: str
    context: str | None
    references: list[str]
    outputs: list[str]
    expect_abstention: bool = False  # the right answer is to say "I don't know"
    references_hidden: bool = False  # the campaign hides reference answers on purpose


def prompt_text(item_input: Any) -> str:
    """A suite item's input as readable text: the string itself, or one ``role: content`` block per message."""
    if isinstance(item_input, str):
        return item_input
    if isinstance(item_input, list):
        parts = []
        for message in item_input:
            if isinstance(message, dict):
                parts.append(f"{message.get('role', '?')}: {message.get('content', '')}")
            else:
                parts.append(str(message))
        return "\n\n".join(parts)
    return json.dumps(item_input, ensure_ascii=False, indent=2)


def load_task(session: Session, account: Account, reservation: Reservation) -> Task:
    """The task behind the annotator's own reservation (raises ``PermissionDenied`` for anyone else's)."""
    assignment = session.get(Assignment, reservation.assignment_id)
    if assignment is None or assignment.user_id != account.id:
        raise PermissionDenied("this reservation belongs to someone else")
    item = session.get(CampaignItem, assignment.campaign_item_id)
    if item is None:
        raise LookupError("the reserved item is gone")
    campaign = session.get(Campaign, item.campaign_id)
    suite_item = session.get(SuiteItem, item.item_id)
    assert campaign is not None and suite_item is not None  # foreign keys
    ids = [item.generation_id] + ([item.other_generation_id] if item.other_generation_id else [])
    texts = dict(session.execute(select(Generation.id, Generation.output).where(Generation.id.in_(ids))).all())
    outputs = [texts[i] for i in ids]
    if reservation.flipped:
        outputs.reverse()
    return Task(
        assignment_id=reservation.assignment_id,
        campaign_id=campaign.id,
        campaign_name=campaign.name,
        pairwise=campaign.pairwise,
        guidelines=campaign.guidelines,
        item_key=suite_item.key,
        prompt=prompt_text(suite_item.input),
        context=suite_item.context,
        references=[] if campaign.hide_references else [str(ref) for ref in suite_item.references or []],
        outputs=outputs,
        expect_abstention=suite_item.expect_abstention and not campaign.hide_references,
        references_hidden=campaign.hide_references,
    )
