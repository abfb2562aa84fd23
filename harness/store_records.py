"""Turn harness records (suites, model descriptions) into store rows, and read run totals back."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from evaltune.db import queries
from evaltune.db.evaluation import Generation
from evaltune.harness.suite import SuiteSpec, item_to_dict


def store_model_version(session: Session, info: dict[str, Any], fingerprint: str) -> int:
    """The id of the model version with this fingerprint, created from ``info`` if new."""
    version = queries.get_or_create_model_version(
        session,
        name=info["name"],
        backend=info["backend"],
        location=info["location"],
        fingerprint=fingerprint,
        served_model=info.get("served_model"),
        parent_id=info.get("parent_id"),
        adapter_path=info.get("adapter_path"),
        adapter_sha256=info.get("adapter_sha256"),
        details=info.get("details") or {},
    )
    return version.id


def store_suite(session: Session, suite: SuiteSpec) -> tuple[int, dict[str, int]]:
    """The suite version's id and its items' row ids by item id, storing them if new."""
    items = []
    for data in map(item_to_dict, suite.items):
        data["key"] = data.pop("id")
        items.append(data)
    row = queries.get_or_create_suite(
        session,
        name=suite.name,
        content_hash=suite.content_hash,
        description=suite.description,
        source=suite.source,
        generation=suite.generation.identity(),
        scorers=list(suite.scorers),
        items=items,
    )
    return row.id, {item.key: item.id for item in row.items}


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
