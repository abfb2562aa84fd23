"""Argilla round trip through the command line: a campaign as Argilla v2 record dicts (``Record.to_dict()``),
responses added as an Argilla user would, read back as ratings equal to the responses. When the ``argilla``
package is installed, the records go through its own ``Record.from_dict``/``to_dict`` (no server needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from evaltune.db.engine import Store
from evaltune.db.ratings import Rating
from tests.conftest import Cli
from tests.fixtures.feedback_seed import seed_store

ALICE = "0b9f6a3e-1d2c-4e5f-8a7b-111111111111"  # Argilla user ids are UUIDs


def _through_argilla(record: dict[str, Any]) -> dict[str, Any]:
    """The record as Argilla's own SDK reads and writes it, when the SDK is installed."""
    try:
        import argilla as rg
    except ImportError:
        return record
    return json.loads(json.dumps(rg.Record.from_dict(record).to_dict(), default=str))


def test_records_round_trip_with_spans(store: Store, cli: Cli, tmp_path: Path) -> None:
    seed_store(store, items=3)
    assert cli("campaigns", "create", "--runs", "1", "--overlap", "1")[0] == 0
    out_file = tmp_path / "records.json"
    code, out, err = cli("campaigns", "export", "1", "--to", "argilla", "-o", str(out_file))
    assert code == 0, err
    assert "wrote 3 records of campaign 1" in out
    settings = json.loads((tmp_path / "records.settings.json").read_text())
    assert [q["name"] for q in settings["questions"]] == ["likert", "hallucination", "spans", "correction", "comment"]
    assert settings["questions"][2] | {"field": "output"} == settings["questions"][2]
    records = json.loads(out_file.read_text())
    answered, expected = [], []
    for number, record in enumerate(records):
        output = record["fields"]["output"]
        start = output.index("Capital")
        spans = [{"label": "hallucinated", "start": start, "end": start + 7}] if number != 1 else []
        record["responses"] = {
            "likert": [{"value": number + 2, "user_id": ALICE}],
            "hallucination": [{"value": "yes" if spans else "no", "user_id": ALICE}],
            "spans": [{"value": spans, "user_id": ALICE}],
            "comment": [{"value": f"note {number}", "user_id": ALICE}],
        }
        answered.append(_through_argilla(record))
        item = record["metadata"]["campaign_item_id"]
        expected.append((item, "ann1", number + 2, bool(spans), [[start, start + 7]] if spans else None,
                         "Capital" if spans else None, f"note {number}"))
    back = tmp_path / "annotated.json"
    back.write_text(json.dumps(answered))
    code, out, err = cli("campaigns", "import", "1", str(back), "--from", "argilla", "--user-map", f"{ALICE}=ann1")
    assert code == 0, err
    assert "stored 3 ratings in campaign 1" in out
    with store.sessions() as session:
        ratings = session.execute(select(Rating).order_by(Rating.campaign_item_id)).scalars()
        got = [(r.campaign_item_id, r.user.name, r.likert, r.hallucination, r.spans, r.hallucinated_span, r.comment)
               for r in ratings]
    assert got == expected


def test_pairwise_records_and_refusals(store: Store, cli: Cli, tmp_path: Path) -> None:
    seed_store(store, items=2)
    assert cli("campaigns", "create", "--runs", "1,2", "--pairwise", "--overlap", "1")[0] == 0
    out_file = tmp_path / "pairs.json"
    assert cli("campaigns", "export", "1", "--to", "argilla", "-o", str(out_file))[0] == 0
    records = json.loads(out_file.read_text())
    assert set(records[0]["fields"]) == {"prompt", "reference", "output_a", "output_b"}
    for record, choice in zip(records, ["B", "both bad"], strict=True):
        record["responses"] = {"choice": [{"value": choice, "user_id": "stranger"}]}
    back = tmp_path / "annotated.jsonl"
    back.write_text("".join(json.dumps(r) + "\n" for r in records))
    code, _out, err = cli("campaigns", "import", "1", str(back), "--from", "argilla")
    assert code == 2 and "annotated by 'stranger', who is not a user here" in err and "nothing was stored" in err
    with store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Rating)) == 0
    code, _out, err = cli("campaigns", "import", "1", str(back), "--from", "argilla", "--user-map", "stranger=ann2")
    assert code == 0, err
    with store.sessions() as session:
        assert list(session.execute(select(Rating.choice).order_by(Rating.id)).scalars()) == ["b", "both_bad"]


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_record_of_another_campaign_is_refused(store: Store, cli: Cli, tmp_path: Path) -> None:
    seed_store(store, items=1)
    assert cli("campaigns", "create", "--runs", "1")[0] == 0
    bad = tmp_path / "records.json"
    bad.write_text(json.dumps([{"id": "r1", "fields": {}, "metadata": {"campaign_id": 3, "campaign_item_id": 1},
                                "responses": {}}]))
    code, _out, err = cli("campaigns", "import", "1", str(bad), "--from", "argilla")
    assert code == 2 and "records.json: record r1: exported from campaign 3, not 1" in err
