"""Evaluation records: model versions, suites and their items, runs, generations, scores."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from evaltune.db.base import Base, utcnow


class ModelVersion(Base):
    """How to load a model, and what it descends from.

    ``backend`` is ``hf`` or ``openai``; ``location`` is a folder, a hub id or an endpoint URL.
    An adapter has a ``parent`` (its base), ``adapter_path`` and ``adapter_sha256``, and the
    retune job that made it. Lineage is the chain of parents.
    """

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    backend: Mapped[str] = mapped_column(String(20))
    location: Mapped[str] = mapped_column(Text)
    served_model: Mapped[str | None] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    adapter_path: Mapped[str | None] = mapped_column(Text)
    adapter_sha256: Mapped[str | None] = mapped_column(String(64))
    # No foreign key: retune_jobs also points here, and SQLite cannot add a cyclic one later.
    retune_job_id: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    parent: Mapped[ModelVersion | None] = relationship(remote_side=[id])


class Suite(Base):
    """One version of a suite: its ``content_hash`` identifies it."""

    __tablename__ = "suites"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(Text, default="")
    generation: Mapped[dict[str, Any]] = mapped_column(default=dict)
    scorers: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    items: Mapped[list[SuiteItem]] = relationship(back_populates="suite", order_by="SuiteItem.position")


class SuiteItem(Base):
    """One item of a suite version. ``assertions`` are its checks as the suite file writes them
    (``{"type": "contains", "value": "812"}``), the suite's defaults first; [] for an item without any."""

    __tablename__ = "suite_items"
    __table_args__ = (UniqueConstraint("suite_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    suite_id: Mapped[int] = mapped_column(ForeignKey("suites.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(200))  # the item's id in its suite file
    position: Mapped[int] = mapped_column(Integer)
    input: Mapped[Any] = mapped_column(type_=Base.type_annotation_map[dict[str, Any]])  # str or messages
    references: Mapped[list[Any]] = mapped_column(default=list)
    context: Mapped[str | None] = mapped_column(Text)
    choices: Mapped[list[Any]] = mapped_column(default=list)
    gold: Mapped[list[Any]] = mapped_column(default=list)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    expect_abstention: Mapped[bool] = mapped_column(default=False)
    group: Mapped[str | None] = mapped_column(String(200), index=True)
    attribute: Mapped[str | None] = mapped_column(String(100))
    value: Mapped[str | None] = mapped_column(String(100))
    item_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    # The server default fills the rows stored before items had assertions (migration 0009).
    assertions: Mapped[list[Any]] = mapped_column(default=list, server_default=text("'[]'"))

    suite: Mapped[Suite] = relationship(back_populates="items")


class Run(Base):
    """One suite version x one model version x one generation config x one seed x an item limit.

    ``generation`` holds the settings the run used (the suite's, or the ones ``evaltune run`` set instead) and its
    batch size; ``item_limit`` is N for a run of the suite's first N items, None for all of them.
    ``status``: running, completed, failed. A run left ``running`` by a killed process is
    resumed by the next identical ``evaltune run`` (same ``fingerprint``).
    """

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    suite_id: Mapped[int] = mapped_column(ForeignKey("suites.id"), index=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), index=True)
    generation: Mapped[dict[str, Any]] = mapped_column(default=dict)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    item_limit: Mapped[int | None] = mapped_column(Integer)
    scorers: Mapped[list[Any]] = mapped_column(default=list)
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(20), default="running", index=True)
    error: Mapped[str | None] = mapped_column(Text)
    code_version: Mapped[str] = mapped_column(String(100), default="")
    stats: Mapped[dict[str, Any]] = mapped_column(default=dict)  # timings, token counts, cache hits
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()

    suite: Mapped[Suite] = relationship()
    model_version: Mapped[ModelVersion] = relationship()
    metrics: Mapped[list[RunMetric]] = relationship(back_populates="run", order_by="RunMetric.name")


class Generation(Base):
    """One output for one item and sample index, or one multiple-choice log-likelihood set."""

    __tablename__ = "generations"
    __table_args__ = (
        UniqueConstraint("run_id", "item_id", "sample_index"),
        Index("ix_generations_cache_key", "cache_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("suite_items.id"))
    sample_index: Mapped[int] = mapped_column(Integer, default=0)
    cache_key: Mapped[str] = mapped_column(String(64))
    prompt: Mapped[str] = mapped_column(Text)  # as rendered for the model (JSON for chat messages)
    output: Mapped[str] = mapped_column(Text, default="")
    # Multiple choice: log P(choice | prompt) per choice. A generated output: [log P(reference | prompt), tokens]
    # per reference, when a scorer asked for them (perplexity).
    choice_logprobs: Mapped[list[Any] | None] = mapped_column(type_=Base.type_annotation_map[list[Any]])
    reference_logprobs: Mapped[list[Any] | None] = mapped_column(type_=Base.type_annotation_map[list[Any]])
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    latency_s: Mapped[float] = mapped_column(Float, default=0.0)
    finish_reason: Mapped[str] = mapped_column(String(20), default="stop")
    cached: Mapped[bool] = mapped_column(default=False)  # copied from an earlier run's cache
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    item: Mapped[SuiteItem] = relationship()


class Score(Base):
    """One scorer's value for one generation (or one item, for group-level scorers)."""

    __tablename__ = "scores"
    __table_args__ = (UniqueConstraint("generation_id", "scorer"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    generation_id: Mapped[int | None] = mapped_column(ForeignKey("generations.id", ondelete="CASCADE"))
    item_id: Mapped[int | None] = mapped_column(ForeignKey("suite_items.id"))
    scorer: Mapped[str] = mapped_column(String(100), index=True)
    value: Mapped[float | None] = mapped_column(Float)  # None: not applicable to this item
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class RunMetric(Base):
    """An aggregate over a run's scores, always with its 95% interval and n."""

    __tablename__ = "run_metrics"
    __table_args__ = (UniqueConstraint("run_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    scorer: Mapped[str] = mapped_column(String(100))
    family: Mapped[str] = mapped_column(String(20))
    higher_is_better: Mapped[bool] = mapped_column(default=True)
    value: Mapped[float] = mapped_column(Float)
    ci_low: Mapped[float] = mapped_column(Float)
    ci_high: Mapped[float] = mapped_column(Float)
    n: Mapped[int] = mapped_column(Integer)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)

    run: Mapped[Run] = relationship(back_populates="metrics")
