"""Sweeps: every prompt variant of a suite x every model, each cell an ordinary run.

A sweep is identified by its ``fingerprint`` (the suite version, its variants, the models as given, the run
options and the code version): the same ``evaltune run`` command finds the same sweep, and so resumes it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from evaltune.db.base import Base, utcnow
from evaltune.db.evaluation import Run

SWEEP_STATES = ("running", "completed", "failed")


class Sweep(Base):
    """One sweep. ``name`` is the suite's; ``spec`` what was asked (suite, variants, models, options) as JSON;
    ``status`` is running, completed or failed (a killed sweep stays running until the same command resumes it)."""

    __tablename__ = "sweeps"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(20), default="running", index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()

    cells: Mapped[list[SweepCell]] = relationship(back_populates="sweep", order_by="SweepCell.position",
                                                  cascade="all, delete-orphan")


class SweepCell(Base):
    """One prompt variant x one model of a sweep. ``model_label`` is the ``--model`` text as given (``./base``,
    ``model:3``, ``openai:http://...``); ``model_spec`` the model as resolved (backend, location, served_model,
    adapter_path, display_name); ``run_id`` the cell's run, None until that run completes."""

    __tablename__ = "sweep_cells"
    __table_args__ = (UniqueConstraint("sweep_id", "variant", "model_label"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    variant: Mapped[str] = mapped_column(String(200))
    model_label: Mapped[str] = mapped_column(String(500))
    model_spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))

    sweep: Mapped[Sweep] = relationship(back_populates="cells")
    run: Mapped[Run | None] = relationship()

    @property
    def label(self) -> str:
        """``variant@model_label``: how reports and ``--baseline`` name the cell."""
        return cell_label(self.variant, self.model_label)


def cell_label(variant: str, model_label: str) -> str:
    """The label of the cell of ``variant`` on ``model_label``, e.g. ``concise@./base``."""
    return f"{variant}@{model_label}"


def find_sweep(session: Session, fingerprint: str) -> Sweep | None:
    """The sweep with this fingerprint, if one was started."""
    return session.execute(select(Sweep).where(Sweep.fingerprint == fingerprint)).scalar_one_or_none()


def list_sweeps(session: Session, limit: int | None = None) -> list[Sweep]:
    """Sweeps, newest first."""
    stmt = select(Sweep).order_by(Sweep.created_at.desc(), Sweep.id.desc())
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.execute(stmt).scalars())
