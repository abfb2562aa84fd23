"""Turn harness records (suites, model descriptions) into store rows, read suite items and settings back, and
total a run's generations."""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from evaltune.db import queries
from evaltune.db.evaluation import Generation, Suite, SuiteItem
from evaltune.harness.loaders.items import assertions_from_yaml
from evaltune.harness.model_resolution import ModelRecord
from evaltune.harness.suite import GenerationSettings, Item, Message, SuiteSpec, item_to_dict
from evaltune.metrics.records import Assertion

_SETTINGS_FIELDS = frozenset(f.name for f in dataclasses.fields(GenerationSettings))


def store_model_version(session: Session, model: ModelRecord, fingerprint: str) -> int:
    """The id of the model version with this fingerprint, created from ``model`` if new."""
    version = queries.get_or_create_model_version(
        session,
        name=model.name,
        backend=model.backend,
        location=model.location,
        fingerprint=fingerprint,
        served_model=model.served_model,
        parent_id=model.parent_id,
        adapter_path=model.adapter_path,
        adapter_sha256=model.adapter_sha256,
        retune_job_id=model.retune_job_id,
        details=model.details,
    )
    return version.id


def store_suite(session: Session, suite: SuiteSpec) -> tuple[int, dict[str, int]]:
    """The suite version's id and its items' row ids by item id, storing them if new.

    The version keeps the settings that are part of its identity (chat mode, system prompt: what each item
    asks); the sampling settings a run used are on the run (``Run.generation``)."""
    items = []
    for data in map(item_to_dict, suite.items):
        data["key"] = data.pop("id")
        data["assertions"] = data.pop("assert", [])
        items.append(data)
    row = queries.get_or_create_suite(
        session,
        name=suite.name,
        content_hash=suite.content_hash,
        description=suite.description,
        source=suite.source,
        generation=suite.generation.prompt_identity(),
        scorers=list(suite.scorers),
        items=items,
    )
    return row.id, {item.key: item.id for item in row.items}


def item_from_row(row: SuiteItem) -> Item:
    """The suite item a stored row holds (the inverse of ``store_suite``)."""
    value = row.input
    prompt = value if isinstance(value, str) else tuple(Message(m["role"], m["content"]) for m in value)
    return Item(
        id=row.key, input=prompt, references=tuple(row.references or ()), context=row.context,
        choices=tuple(row.choices or ()), gold=tuple(row.gold or ()), tags=tuple(row.tags or ()),
        expect_abstention=row.expect_abstention, group=row.group, attribute=row.attribute, value=row.value,
        metadata=dict(row.item_metadata or {}), assertions=stored_assertions(row),
    )


def stored_assertions(row: SuiteItem) -> tuple[Assertion, ...]:
    """A stored item's assertions, read back through the same checks a suite file passes. One that no longer
    loads (a scorer from a plug-in since uninstalled) raises ``SuiteError`` naming the suite, item and field."""
    if not row.assertions:
        return ()
    suite = row.suite
    source = f"suite {suite.name} ({suite.content_hash[:12]}, as stored)"
    return assertions_from_yaml(list(row.assertions), source, item=row.key)


def settings_from_row(suite: Suite) -> GenerationSettings:
    """The prompt settings of a stored suite version (chat mode, system prompt: all that rebuilding a prompt
    needs); the other fields are the defaults, or the first suite file's values in a store written before
    versions left sampling settings to the run (``Run.generation`` holds a run's own)."""
    stored = {key: value for key, value in (suite.generation or {}).items() if key in _SETTINGS_FIELDS}
    if "stop" in stored:
        stored["stop"] = tuple(stored["stop"] or ())
    return GenerationSettings(**stored)


def generation_totals(session: Session, run_id: int) -> dict[str, Any]:
    """Token counts and latency over a run, split into freshly generated and copied from cache."""
    query = select(
        Generation.cached,
        func.count(),
        func.coalesce(func.sum(Generation.prompt_tokens), 0),
        func.coalesce(func.sum(Generation.completion_tokens), 0),
        func.coalesce(func.sum(Generation.latency_s), 0.0),
    ).where(Generation.run_id == run_id).group_by(Generation.cached)
    totals = {"outputs": 0, "prompt_tokens": 0, "completion_tokens": 0,
              "fresh_completion_tokens": 0, "fresh_latency_s": 0.0}
    for cached, count, prompt_tokens, completion_tokens, latency in session.execute(query):
        totals["outputs"] += count
        totals["prompt_tokens"] += int(prompt_tokens)
        totals["completion_tokens"] += int(completion_tokens)
        if not cached:
            totals["fresh_completion_tokens"] += int(completion_tokens)
            totals["fresh_latency_s"] += float(latency)
    totals["fresh_latency_s"] = round(totals["fresh_latency_s"], 3)
    return totals
