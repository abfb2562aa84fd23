"""Argilla (v2): a campaign's items as Argilla records, and records with responses read back as ratings.

Records are the dicts Argilla's ``Record.to_dict()`` writes and ``Record.from_dict()`` reads (a JSON list, as
``dataset.records.to_json`` writes it; JSON Lines is read too): ``id``, ``fields``, ``metadata``, ``suggestions``
(``{question: {value, score, agent}}``) and ``responses`` (``{question: [{value, user_id}, ...]}``). No Argilla
server is needed: ``rg.Dataset(settings=rg.Settings(**settings))`` with the written settings, then
``dataset.records.log(records)`` puts them into one.

Fields: ``prompt``, ``reference``, ``output`` (or ``output_a``/``output_b``). Questions (``settings``): ``likert``
(rating 1-5), ``hallucination`` (label yes/no), ``spans`` (span on ``output``, label ``hallucinated``, character
offsets), ``correction`` and ``comment`` (text); for A/B ``choice`` (label A, B, tie, both bad). Metadata carries
our ``campaign_id``, ``campaign_item_id`` and ``item_key``; records are matched back by ``campaign_item_id``.
A response's ``user_id`` is an Argilla user's UUID: ``--user-map UUID=NAME`` maps it, or it may be our user name.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from evaltune.interchange.campaign_io import (
    CampaignTask,
    ExchangeError,
    ImportedAnswer,
    load_export,
    resolve_annotator,
)

SPAN_LABEL = "hallucinated"
_CHOICES = {"A": "a", "B": "b", "tie": "tie", "both bad": "both_bad"}


def dataset_settings(pairwise: bool, guidelines: str = "") -> dict[str, Any]:
    """The Argilla dataset settings (``rg.Settings`` as a dict) for a campaign's questions."""
    outputs = ["output_a", "output_b"] if pairwise else ["output"]
    fields = [{"name": name, "type": "text", "required": name != "reference"}
              for name in ("prompt", "reference", *outputs)]
    if pairwise:
        questions: list[dict[str, Any]] = [
            {"name": "choice", "type": "label_selection", "labels": list(_CHOICES), "required": True},
            {"name": "comment", "type": "text", "required": False}]
    else:
        questions = [
            {"name": "likert", "type": "rating", "values": [1, 2, 3, 4, 5], "required": True},
            {"name": "hallucination", "type": "label_selection", "labels": ["yes", "no"], "required": True},
            {"name": "spans", "type": "span", "field": "output", "labels": [SPAN_LABEL], "required": False},
            {"name": "correction", "type": "text", "required": False},
            {"name": "comment", "type": "text", "required": False}]
    return {"guidelines": guidelines or None, "fields": fields, "questions": questions,
            "metadata": [{"name": "campaign_item_id", "type": "integer"}, {"name": "item_key", "type": "terms"}]}


def record(task: CampaignTask) -> dict[str, Any]:
    """One campaign item as an Argilla record dict (``Record.to_dict()``'s shape), without responses."""
    fields = {"prompt": task.prompt, "reference": " | ".join(task.references) or None}
    if len(task.outputs) == 2:
        fields["output_a"], fields["output_b"] = task.outputs
    else:
        fields["output"] = task.outputs[0]
    metadata = {"campaign_id": task.campaign_id, "campaign_item_id": task.campaign_item_id,
                "item_key": task.item_key}
    return {"id": f"campaign-{task.campaign_id}-item-{task.campaign_item_id}", "fields": fields,
            "metadata": metadata, "suggestions": {}, "responses": {}, "vectors": {}, "_server_id": None}


def write_records(tasks: list[CampaignTask], pairwise: bool, guidelines: str, path: Path) -> Path:
    """Write the records to ``path`` (a JSON list) and the dataset settings beside it (``NAME.settings.json``);
    returns where the settings went."""
    path.write_text(json.dumps([record(t) for t in tasks], ensure_ascii=False, indent=1), encoding="utf-8")
    settings = path.with_suffix(".settings.json")
    settings.write_text(json.dumps(dataset_settings(pairwise, guidelines), indent=1), encoding="utf-8")
    return settings


def _value(question: str, value: Any, label: str) -> dict[str, Any]:
    """One response value as the ImportedAnswer field(s) it gives."""
    if question == "likert":
        return {"likert": int(value)}
    if question == "hallucination":
        return {"hallucination": value == "yes"}
    if question == "spans":
        spans = value or []
        if any(not isinstance(s, Mapping) or not isinstance(s.get("start"), int) or not isinstance(s.get("end"), int)
               for s in spans):
            raise ExchangeError(f"{label}: a span without start and end offsets; spans are "
                                "[{label, start, end}, ...]")
        return {"spans": [[s["start"], s["end"]] for s in spans]}
    if question in ("correction", "comment"):
        return {question: value or None}
    if question == "choice":
        if value not in _CHOICES:
            raise ExchangeError(f"{label}: choice {value!r} is not one of {', '.join(_CHOICES)}")
        return {"choice": _CHOICES[value]}
    return {}


def read_records(path: Path, session: Any, campaign_id: int, user_map: Mapping[str, str]) -> list[ImportedAnswer]:
    """The answers in the records at ``path``: one per (record, user_id) with responses. Raises ``ExchangeError``
    naming the record for a record of another campaign or an unknown user."""
    answers = []
    records = load_export(path, tool="an Argilla records file",
                          fix="write the records with dataset.records.to_json(PATH) or as JSON Lines")
    for number, item in enumerate(records, start=1):
        if not isinstance(item, Mapping):
            raise ExchangeError(f"{path.name}: record #{number} is not a record dict")
        label = f"{path.name}: record {item.get('id') or '#' + str(number)}"
        metadata = item.get("metadata") or {}
        if not isinstance(metadata.get("campaign_item_id"), int):
            raise ExchangeError(f"{label}: no metadata.campaign_item_id; import only records exported by 'evaltune "
                                "campaigns export --to argilla'")
        if metadata.get("campaign_id") not in (None, campaign_id):
            raise ExchangeError(f"{label}: exported from campaign {metadata['campaign_id']}, not {campaign_id}; "
                                f"run the import with --campaign {metadata['campaign_id']}")
        by_user: dict[str, dict[str, Any]] = defaultdict(dict)
        for question, responses in (item.get("responses") or {}).items():
            for response in responses or []:
                if not isinstance(response, Mapping) or response.get("user_id") in (None, ""):
                    raise ExchangeError(f"{label}: a response to {question!r} without a user_id")
                by_user[str(response["user_id"])] |= _value(question, response.get("value"), label)
        for user_id, values in by_user.items():
            annotator = resolve_annotator(session, [user_id], user_map, label)
            answers.append(ImportedAnswer(task=label, campaign_item_id=metadata["campaign_item_id"],
                                          annotator=annotator, **values))
    return answers
