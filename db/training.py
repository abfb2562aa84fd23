"""Retune records: preference datasets derived from ratings, and retune jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from evaltune.db.base import Base, utcnow

# degraded: trained and evaluated like succeeded, but the collapse check found the adapter worse than its base at
# what the retune was not meant to change (RetuneJob.collapse_check holds the figures).
JOB_STATES = ("queued", "running", "succeeded", "degraded", "failed", "cancelled")


class PreferenceDataset(Base):
    """Training rows derived from ratings by a named strategy with its parameters."""

    __tablename__ = "preference_datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    strategy: Mapped[str] = mapped_column(String(50))  # pairwise, likert-gap, correction, kto, sft
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"))
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    rows: Mapped[list[PreferenceRow]] = relationship(back_populates="dataset")


class PreferenceRow(Base):
    """One training row in TRL's column names.

    prompt/chosen/rejected (preference), prompt/completion/label (KTO) or prompt/completion (SFT).
    """

    __tablename__ = "preference_rows"

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("preference_datasets.id", ondelete="CASCADE"), index=True)
    split: Mapped[str] = mapped_column(String(10), default="train")  # train or holdout
    item_id: Mapped[int | None] = mapped_column(ForeignKey("suite_items.id"))
    prompt: Mapped[Any] = mapped_column(type_=Base.type_annotation_map[dict[str, Any]])
    chosen: Mapped[str | None] = mapped_column(Text)
    rejected: Mapped[str | None] = mapped_column(Text)
    completion: Mapped[str | None] = mapped_column(Text)
    label: Mapped[bool | None] = mapped_column()
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    rating_ids: Mapped[list[Any]] = mapped_column(default=list)

    dataset: Mapped[PreferenceDataset] = relationship(back_populates="rows")


class RetuneJob(Base):
    """A LoRA / DPO / KTO / SFT job: queued in the store, claimed and run by a worker."""

    __tablename__ = "retune_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)  # one of JOB_STATES
    method: Mapped[str] = mapped_column(String(10))  # dpo, kto, sft
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("preference_datasets.id"))
    # None until a worker registers the base the job names by ``base_spec`` (registering loads the model, which
    # queueing a job must not do).
    base_model_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    # The base model as resolved when the job was queued (backend, location, served_model, display_name,
    # default_cache): what the worker loads and registers when base_model_id is None.
    base_spec: Mapped[dict[str, Any] | None] = mapped_column()
    output_model_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    eval_suites: Mapped[list[Any]] = mapped_column(default=list)
    follow_up_run_ids: Mapped[list[Any]] = mapped_column(default=list)
    # The collapse check after training (retune.collapse): "degraded", "summary" (one line with the figures) and
    # the figures themselves; None until the check has run.
    collapse_check: Mapped[dict[str, Any] | None] = mapped_column()
    log: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text)  # one sentence: what failed and the fix
    traceback: Mapped[str | None] = mapped_column(Text)  # of the error that failed the job, for a bug report
    worker: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
