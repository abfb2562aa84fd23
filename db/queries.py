"""The queries the runner, the reports and the app share, each a short function over a Session.

Writes that may race with another process (two runs registering the same model, a resumed run
re-inserting a batch) use INSERT ... ON CONFLICT, so they are idempotent on SQLite and PostgreSQL alike.
None of these functions commits: the caller's ``session_scope()`` decides.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import Insert, case, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, selectinload

from evaltune.db.base import Base
from evaltune.db.engine import StoreError
from evaltune.db.evaluation import Generation, ModelVersion, Run, RunMetric, Score, Suite, SuiteItem

CHUNK = 500  # keys per IN (...) query: well under SQLite's bound-parameter limit

ITEM_FIELDS = {
    "key": None,
    "input": None,
    "references": list,
    "context": None,
    "choices": list,
    "gold": list,
    "tags": list,
    "expect_abstention": False,
    "group": None,
    "attribute": None,
    "value": None,
    "metadata": dict,
    "assertions": list,
}


def dialect_insert(session: Session, model: type[Base]) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT (the generic one does not)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model)
    if dialect == "sqlite":
        return sqlite.insert(model)
    raise StoreError(f"evaltune's store supports sqlite and postgresql, not {dialect}; "
                     "set EVALTUNE_DB_URL to a sqlite:/// or postgresql+psycopg:// URL")


def _chunks(values: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def get_or_create_model_version(
    session: Session,
    *,
    name: str,
    backend: str,
    location: str,
    fingerprint: str,
    served_model: str | None = None,
    parent_id: int | None = None,
    adapter_path: str | None = None,
    adapter_sha256: str | None = None,
    retune_job_id: int | None = None,
    details: Mapping[str, Any] | None = None,
) -> ModelVersion:
    """The model version with this fingerprint, registered now if it is new (an existing one is unchanged)."""
    stmt: Insert = dialect_insert(session, ModelVersion).values(
        name=name,
        backend=backend,
        location=location,
        fingerprint=fingerprint,
        served_model=served_model,
        parent_id=parent_id,
        adapter_path=adapter_path,
        adapter_sha256=adapter_sha256,
        retune_job_id=retune_job_id,
        details=dict(details or {}),
    )
    session.execute(stmt.on_conflict_do_nothing(index_elements=["fingerprint"]))  # type: ignore[attr-defined]
    return session.execute(select(ModelVersion).filter_by(fingerprint=fingerprint)).scalar_one()


def _item_row(suite_id: int, position: int, item: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(item) - set(ITEM_FIELDS)
    if unknown:
        raise ValueError(f"suite item {position} ({item.get('key')!r}) has unknown fields {sorted(unknown)}")
    for required in ("key", "input"):
        if item.get(required) is None:
            raise ValueError(f"suite item {position} has no {required!r}")
    row = {"suite_id": suite_id, "position": position}
    for field, default in ITEM_FIELDS.items():
        value = item.get(field)
        row[field] = value if value is not None else (default() if callable(default) else default)
    row["item_metadata"] = row.pop("metadata")
    return row


def get_or_create_suite(
    session: Session,
    *,
    name: str,
    content_hash: str,
    items: Sequence[Mapping[str, Any]],
    description: str = "",
    source: str = "",
    generation: Mapping[str, Any] | None = None,
    scorers: Sequence[Any] = (),
) -> Suite:
    """The suite version with this content hash; if new, it is stored with all its items in one bulk insert.

    Each item is a dict with ``key`` and ``input`` and optionally references, context, choices, gold,
    tags, expect_abstention, group, attribute, value, metadata, assertions. Raises ``ValueError`` for other keys.
    """
    stmt: Insert = dialect_insert(session, Suite).values(
        name=name,
        content_hash=content_hash,
        description=description,
        source=source,
        generation=dict(generation or {}),
        scorers=list(scorers),
    )
    stmt = stmt.on_conflict_do_nothing(index_elements=["content_hash"]).returning(Suite.id)  # type: ignore[attr-defined]
    new_id = session.execute(stmt).scalar_one_or_none()
    if new_id is not None and items:
        rows = [_item_row(new_id, position, item) for position, item in enumerate(items)]
        session.execute(insert(SuiteItem), rows)
    return session.execute(select(Suite).filter_by(content_hash=content_hash)).scalar_one()


def find_completed_run(session: Session, fingerprint: str, code_version: str) -> Run | None:
    """The latest completed run with this fingerprint made by this code version, if any."""
    stmt = (
        select(Run)
        .where(Run.fingerprint == fingerprint, Run.status == "completed", Run.code_version == code_version)
        .order_by(Run.created_at.desc(), Run.id.desc())
        .limit(1)
    )
    return session.execute(stmt).scalar_one_or_none()


def find_resumable_run(session: Session, fingerprint: str) -> Run | None:
    """The latest run with this fingerprint that did not complete (running or failed), if any."""
    stmt = (
        select(Run)
        .where(Run.fingerprint == fingerprint, Run.status != "completed")
        .order_by(Run.created_at.desc(), Run.id.desc())
        .limit(1)
    )
    return session.execute(stmt).scalar_one_or_none()


def stored_generation_keys(session: Session, run_id: int) -> set[tuple[int, int]]:
    """The (item_id, sample_index) pairs this run already has, so a resumed run can skip them."""
    stmt = select(Generation.item_id, Generation.sample_index).where(Generation.run_id == run_id)
    return {(item_id, sample) for item_id, sample in session.execute(stmt)}


def cached_generations(
    session: Session, cache_keys: Collection[str], *, exclude_run_id: int | None = None
) -> dict[str, Generation]:
    """Earlier generations for these cache keys, one per key: from a completed run if any, else the newest."""
    keys = sorted(set(cache_keys))
    found: dict[str, Generation] = {}
    completed_last = case((Run.status == "completed", 1), else_=0)
    for chunk in _chunks(keys):
        stmt = (
            select(Generation)
            .join(Run, Run.id == Generation.run_id)
            .where(Generation.cache_key.in_(chunk))
            .order_by(completed_last, Generation.id)  # later rows overwrite earlier ones below
        )
        if exclude_run_id is not None:
            stmt = stmt.where(Generation.run_id != exclude_run_id)
        for generation in session.execute(stmt).scalars():
            found[generation.cache_key] = generation
    return found


def insert_generations(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert generations in bulk, skipping any whose (run_id, item_id, sample_index) is already stored."""
    if rows:
        stmt = dialect_insert(session, Generation).on_conflict_do_nothing(
            index_elements=["run_id", "item_id", "sample_index"])
        session.execute(stmt, [dict(row) for row in rows])


def insert_scores(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Store scores; re-scoring replaces the value and details of the same (generation, scorer).

    Item-level scores (no ``generation_id``) replace the same (run, item, scorer).
    """
    # Details default to {} as the column does; every other None is written as NULL ("render_nulls"), so all
    # rows have one set of columns and go in large batches. Without it the ORM starts a new INSERT wherever a
    # row's None-ness changes: a scorer that applies to some items only (value None on the others) took one
    # statement per few rows, 5,000 statements to score 10,000 outputs with five scorers.
    rows = [{**row, "details": row.get("details") or {}} for row in rows]
    per_generation = [row for row in rows if row.get("generation_id") is not None]
    per_item = [row for row in rows if row.get("generation_id") is None]
    if per_generation:
        stmt = dialect_insert(session, Score)
        stmt = stmt.on_conflict_do_update(
            index_elements=["generation_id", "scorer"],
            set_={"value": stmt.excluded.value, "details": stmt.excluded.details},
        )
        session.execute(stmt, per_generation, execution_options={"render_nulls": True})
    if per_item:
        # The unique constraint does not cover NULL generation_id, so replace explicitly.
        for row in per_item:
            session.execute(
                delete(Score).where(
                    Score.run_id == row["run_id"],
                    Score.item_id == row.get("item_id"),
                    Score.scorer == row["scorer"],
                    Score.generation_id.is_(None),
                )
            )
        session.execute(insert(Score), per_item, execution_options={"render_nulls": True})


def replace_run_metrics(
    session: Session, run_id: int, scorers: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> None:
    """Make ``rows`` the run's metrics of these ``scorers`` (``run_id`` is filled in); other scorers' metrics stay,
    so re-scoring a run with a subset of its scorers keeps the rest."""
    session.execute(delete(RunMetric).where(RunMetric.run_id == run_id, RunMetric.scorer.in_(scorers)))
    if rows:
        session.execute(insert(RunMetric), [{**row, "run_id": run_id} for row in rows])


def list_runs(session: Session, limit: int = 50) -> list[Run]:
    """The newest runs first, with their suite, model version and metrics loaded."""
    stmt = (
        select(Run)
        .options(selectinload(Run.suite), selectinload(Run.model_version), selectinload(Run.metrics))
        .order_by(Run.created_at.desc(), Run.id.desc())
        .limit(limit)
    )
    return list(session.execute(stmt).scalars())


def list_model_versions(session: Session) -> list[ModelVersion]:
    """Every registered model version, oldest first."""
    return list(session.execute(select(ModelVersion).order_by(ModelVersion.id)).scalars())


def lineage(session: Session, model_version_id: int) -> list[ModelVersion]:
    """The model version and its ancestors: [itself, its parent, ..., the base].

    Raises ``LookupError`` if there is no model version with that id.
    """
    chain: list[ModelVersion] = []
    seen: set[int] = set()
    current = session.get(ModelVersion, model_version_id)
    if current is None:
        raise LookupError(f"no model version with id {model_version_id}")
    while current is not None and current.id not in seen:  # a cycle would be corrupt data; stop, don't hang
        chain.append(current)
        seen.add(current.id)
        current = session.get(ModelVersion, current.parent_id) if current.parent_id is not None else None
    return chain
