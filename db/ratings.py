"""Annotation records: users and their log-in attempts, rating campaigns (with the annotators they are given to),
their items and reservations, ratings, adjudications."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, false, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from evaltune.db.base import Base, utcnow

ROLES = ("admin", "annotator", "viewer")


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))  # one of ROLES
    password_hash: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Campaign(Base):
    """A rating campaign over one run's outputs (or two runs', for blind pairwise A/B)."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    run_ids: Mapped[list[Any]] = mapped_column(default=list)
    item_filter: Mapped[dict[str, Any]] = mapped_column(default=dict)
    overlap: Mapped[int] = mapped_column(Integer, default=1)  # ratings wanted per item
    pairwise: Mapped[bool] = mapped_column(default=False)
    guidelines: Mapped[str] = mapped_column(Text, default="")
    # Annotators are not shown the items' reference answers (to judge without anchoring on them).
    hide_references: Mapped[bool] = mapped_column(default=False, server_default=false())
    status: Mapped[str] = mapped_column(String(20), default="open")
    # How the items were chosen: {"method": "all"}, or an informative selection's budget and reasons.
    selection: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=text("'{}'"))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CampaignItem(Base):
    """One task in a campaign: an output to rate, or two outputs for the same item (A/B)."""

    __tablename__ = "campaign_items"
    __table_args__ = (UniqueConstraint("campaign_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    item_id: Mapped[int] = mapped_column(ForeignKey("suite_items.id"))
    generation_id: Mapped[int] = mapped_column(ForeignKey("generations.id"))
    other_generation_id: Mapped[int | None] = mapped_column(ForeignKey("generations.id"))
    ratings_done: Mapped[int] = mapped_column(Integer, default=0)
    selected_because: Mapped[str | None] = mapped_column(String(200))  # an informative selection's reason
    # Open, unexpired reservations. Kept on the row (not counted from assignments) so that a claim can
    # check "ratings_done + open_holds < overlap" on the very row it locks or updates: that check is then
    # atomic on SQLite and re-evaluated by PostgreSQL when a concurrent claim changed the row.
    open_holds: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Assignment(Base):
    """A reservation of a campaign item for one annotator; it expires if left open."""

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("campaign_item_id", "user_id"),
        Index("ix_assignments_status_expires_at", "status", "expires_at"),  # the expiry sweep
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_item_id: Mapped[int] = mapped_column(ForeignKey("campaign_items.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="open")  # open, done, skipped, expired
    reserved_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    # Blind A/B: True shows other_generation on side A. Drawn at reservation so a reload keeps the sides.
    flipped: Mapped[bool] = mapped_column(default=False, server_default=false())


class Rating(Base):
    """One annotator's judgement of one campaign item.

    Single output: ``likert`` (1-5), ``thumbs``, flags, ``correction``. Pairwise: ``choice``
    (a, b, tie, both_bad) with the generations that were shown on each side. A skip is a row with
    ``skipped`` set and no answer; ``adjudicated_by`` is the admin who settled the item (see ``Adjudication``).
    """

    __tablename__ = "ratings"
    __table_args__ = (UniqueConstraint("campaign_item_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_item_id: Mapped[int] = mapped_column(ForeignKey("campaign_items.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    generation_id: Mapped[int | None] = mapped_column(ForeignKey("generations.id"), index=True)  # run drill-down
    likert: Mapped[int | None] = mapped_column(Integer)
    thumbs: Mapped[bool | None] = mapped_column()
    choice: Mapped[str | None] = mapped_column(String(10))
    side_a_generation_id: Mapped[int | None] = mapped_column(ForeignKey("generations.id"))
    side_b_generation_id: Mapped[int | None] = mapped_column(ForeignKey("generations.id"))
    hallucination: Mapped[bool | None] = mapped_column()
    hallucinated_span: Mapped[str | None] = mapped_column(Text)
    # The hallucinated spans as [start, end) character offsets into the output shown, sorted, not overlapping;
    # hallucinated_span holds their text. None for ratings made before spans were marked in the output.
    spans: Mapped[list[Any] | None] = mapped_column()
    bias: Mapped[bool] = mapped_column(default=False)
    unsafe: Mapped[bool] = mapped_column(default=False)
    correction: Mapped[str | None] = mapped_column(Text)
    comment: Mapped[str | None] = mapped_column(Text)
    skipped: Mapped[bool] = mapped_column(default=False)
    # Written by a program (``evaltune demo`` simulates raters from references), not by a person.
    simulated: Mapped[bool] = mapped_column(default=False, server_default=false())
    adjudicated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship(foreign_keys=[user_id])


class Adjudication(Base):
    """An admin's final decision on a disagreed campaign item, one per item.

    ``decision`` maps a question (likert, hallucination, bias, unsafe, choice) to its final value; a pairwise
    ``choice`` is ``first``/``second`` (the campaign item's generation / other generation), tie or both_bad.
    """

    __tablename__ = "adjudications"

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_item_id: Mapped[int] = mapped_column(
        ForeignKey("campaign_items.id", ondelete="CASCADE"), unique=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    decision: Mapped[dict[str, Any]] = mapped_column(default=dict)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LoginAttempt(Base):
    """One log-in attempt, by the name typed and the client address; the rate limit counts these.

    ``outcome``: ``checking`` (the password is being checked: counted as a failure until it passes), ``failed``,
    ``ok``, ``refused`` (the name or address was locked out, so the password was not even checked), or
    ``unlocked`` (a failure an admin has told to stop counting: ``evaltune users unlock``).
    Stored, not kept in a browser session, so that a script opening fresh sessions meets the same limit.
    """

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_name_created_at", "name", "created_at"),
        Index("ix_login_attempts_client_created_at", "client", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))  # as typed (trimmed, cut to 100): unknown names count too
    client: Mapped[str | None] = mapped_column(String(64))  # the browser's IP address, when the server knows it
    outcome: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CampaignAnnotator(Base):
    """An annotator a campaign is given to. A campaign with no rows here is open to every annotator."""

    __tablename__ = "campaign_annotators"

    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True)


class UserSession(Base):
    """A signed-in browser: only the sha256 of its random token is stored (the browser holds the token in an
    HttpOnly cookie). ``expires_at`` slides forward while it is used; ``revoked_at`` ends it early (log-out,
    role change, password reset, deactivation)."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    revoked_because: Mapped[str | None] = mapped_column(String(40))
    client: Mapped[str | None] = mapped_column(String(200))


class RuledTie(Base):
    """A pair of a pairwise campaign that was never queued because its two outputs are identical (after whitespace
    normalisation): recorded as a tie by ``rule`` instead of asking people to judge it."""

    __tablename__ = "ruled_ties"

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("suite_items.id"))
    generation_id: Mapped[int] = mapped_column(ForeignKey("generations.id"))
    other_generation_id: Mapped[int] = mapped_column(ForeignKey("generations.id"))
    rule: Mapped[str] = mapped_column(String(40), default="identical outputs")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
