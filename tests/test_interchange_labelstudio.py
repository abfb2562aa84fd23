"""Label Studio round trip through the command line: a campaign's tasks out, annotations in Label Studio's JSON
export format (https://labelstud.io/guide/task_format) back in as ratings equal to what was annotated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from evaltune.db.engine import Store
from evaltune.db.ratings import CampaignItem, Rating
from tests.conftest import Cli
from tests.fixtures.feedback_seed import seed_store


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


def _ls_export(tasks: list[dict[str, Any]], annotate: Any) -> list[dict[str, Any]]:
    """Label Studio's export: its own task ids, our data kept, an annotations list per task."""
    exported = []
    for number, task in enumerate(tasks):
        annotations = [{"id": 1000 + number * 10 + k, "result": result, "was_cancelled": cancelled,
                        "ground_truth": False, "completed_by": who, "task": 500 + number, "lead_time": 4.2}
                       for k, (who, result, cancelled) in enumerate(annotate(number, task["data"]))]
        exported.append({"id": 500 + number, "data": task["data"], "annotations": annotations, "predictions": []})
    return exported


def _span(output: str, text: str) -> tuple[int, int, dict[str, Any]]:
    start = output.index(text)
    value = {"start": start, "end": start + len(text), "text": text, "labels": ["Hallucinated"]}
    return start, start + len(text), {"from_name": "spans", "to_name": "output", "type": "labels", "value": value}


def _ratings(store: Store) -> list[tuple[Any, ...]]:
    with store.sessions() as session:
        rows = session.execute(select(Rating).order_by(Rating.campaign_item_id, Rating.user_id)).scalars()
        return [(r.campaign_item_id, r.user.name, r.likert, r.hallucination, r.spans, r.hallucinated_span,
                 r.correction, r.choice, r.side_a_generation_id, r.side_b_generation_id) for r in rows]


def test_single_output_campaign_round_trip(store: Store, cli: Cli, tmp_path: Path) -> None:
    seed_store(store, items=4)
    assert cli("campaigns", "create", "--runs", "1", "--overlap", "2")[0] == 0
    tasks_file = tmp_path / "tasks.json"
    code, out, err = cli("campaigns", "export", "1", "--to", "labelstudio", "-o", str(tasks_file))
    assert code == 0, err
    assert "wrote 4 tasks of campaign 1" in out
    config = (tmp_path / "tasks.config.xml").read_text()
    for tag in ('<Rating name="likert" toName="output" maxRating="5"', '<Labels name="spans" toName="output">',
                '<Choices name="hallucination"', '<Text name="output" value="$output"'):
        assert tag in config
    tasks = json.loads(tasks_file.read_text())
    assert set(tasks[0]["data"]) == {"prompt", "reference", "output", "campaign_id", "campaign_item_id", "item_key"}

    expected: list[tuple[Any, ...]] = []

    def annotate(number: int, data: dict[str, Any]) -> list[Any]:
        output = data["output"]
        start, end, span = _span(output, "Capital")
        first = [{"from_name": "likert", "to_name": "output", "type": "rating", "value": {"rating": 1 + number}},
                 {"from_name": "hallucination", "to_name": "output", "type": "choices", "value": {"choices": ["yes"]}},
                 span]
        second = [{"from_name": "likert", "to_name": "output", "type": "rating", "value": {"rating": 5}},
                   {"from_name": "hallucination", "to_name": "output", "type": "choices", "value": {"choices": ["no"]}},
                   {"from_name": "correction", "to_name": "output", "type": "textarea",
                    "value": {"text": [f"Capital {number}."]}}]
        expected.append((data["campaign_item_id"], "ann1", 1 + number, True, [[start, end]], "Capital", None))
        expected.append((data["campaign_item_id"], "ann2", 5, False, None, None, f"Capital {number}."))
        return [(7, first, False), ({"id": 8, "email": "ann2@example.com"}, second, False), (9, [], True)]

    exported = tmp_path / "project-1-at-2026.json"
    exported.write_text(json.dumps(_ls_export(tasks, annotate)))
    code, out, err = cli("campaigns", "import", "1", str(exported), "--from", "labelstudio", "--user-map", "7=ann1",
                         "--user-map", "9=ann1")
    assert code == 0, err
    assert "stored 8 ratings in campaign 1" in out and "4 skipped (cancelled) annotations left out" in out
    assert [row[:7] for row in _ratings(store)] == sorted(expected, key=lambda r: (r[0], r[1]))
    with store.sessions() as session:  # each counts toward its item's overlap: the items are complete
        assert list(session.execute(select(CampaignItem.ratings_done)).scalars()) == [2, 2, 2, 2]

    # The same file again: every annotation is already there, and nothing more is stored.
    code, _out, err = cli("campaigns", "import", "1", str(exported), "--from", "labelstudio", "--user-map", "7=ann1")
    assert code == 2 and "ann1 has already rated campaign item" in err and "nothing was stored" in err
    assert len(_ratings(store)) == 8


def test_pairwise_campaign_round_trip(store: Store, cli: Cli, tmp_path: Path) -> None:
    seeded = seed_store(store, items=3)
    assert cli("campaigns", "create", "--runs", "1,2", "--pairwise", "--overlap", "1")[0] == 0
    tasks_file = tmp_path / "pairs.json"
    assert cli("campaigns", "export", "1", "--to", "labelstudio", "-o", str(tasks_file))[0] == 0
    assert '<Pairwise name="choice" toName="output_a,output_b"/>' in (tmp_path / "pairs.config.xml").read_text()
    tasks = json.loads(tasks_file.read_text())
    assert tasks[0]["data"]["output_a"].startswith("Run 1") and tasks[0]["data"]["output_b"].startswith("Run 2")
    picks = [{"from_name": "choice", "to_name": "output_a,output_b", "type": "pairwise",
              "value": {"selected": "right"}},
             {"from_name": "verdict", "to_name": "output_a", "type": "choices", "value": {"choices": ["tie"]}},
             {"from_name": "choice", "to_name": "output_a,output_b", "type": "pairwise",
              "value": {"selected": "left"}}]
    exported = tmp_path / "export.json"
    exported.write_text(json.dumps(_ls_export(tasks, lambda n, _data: [("ann1", [picks[n]], False)])))
    code, _out, err = cli("campaigns", "import", "1", str(exported), "--from", "labelstudio")
    assert code == 0, err
    ratings = _ratings(store)
    first, second = seeded.generation_ids[seeded.run_ids[0]], seeded.generation_ids[seeded.run_ids[1]]
    assert [(r[7], r[8], r[9]) for r in ratings] == [("b", first[0], second[0]), ("tie", first[1], second[1]),
                                                     ("a", first[2], second[2])]


def test_unknown_annotators_and_bad_spans_store_nothing(store: Store, cli: Cli, tmp_path: Path) -> None:
    seed_store(store, items=2)
    assert cli("campaigns", "create", "--runs", "1")[0] == 0
    tasks_file = tmp_path / "tasks.json"
    assert cli("campaigns", "export", "1", "--to", "labelstudio", "-o", str(tasks_file))[0] == 0
    tasks = json.loads(tasks_file.read_text())
    good = [{"from_name": "likert", "to_name": "output", "type": "rating", "value": {"rating": 3}}]
    bad_span = [*good, {"from_name": "spans", "to_name": "output", "type": "labels",
                        "value": {"start": 5, "end": 9999, "text": "x", "labels": ["Hallucinated"]}}]

    def write(annotate: Any) -> str:
        path = tmp_path / "export.json"
        path.write_text(json.dumps(_ls_export(tasks, annotate)))
        return str(path)

    code, _out, err = cli("campaigns", "import", "1", write(lambda n, _d: [("ann1" if n == 0 else 42, good, False)]),
                          "--from", "labelstudio")
    assert code == 2
    assert "export.json: task 501: annotated by '42', who is not a user here" in err and "--user-map 42=NAME" in err
    code, _out, err = cli("campaigns", "import", "1", write(lambda n, _d: [("ann1", bad_span, False)]),
                          "--from", "labelstudio")
    assert code == 2 and "task 500: span [5, 9999] runs past the end of the output" in err
    other = [dict(t, data=dict(t["data"], campaign_id=7)) for t in tasks]
    (tmp_path / "other.json").write_text(json.dumps(other))
    code, _out, err = cli("campaigns", "import", "1", str(tmp_path / "other.json"), "--from", "labelstudio")
    assert code == 2 and "exported from campaign 7, not 1; run the import with --campaign 7" in err
    with store.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Rating)) == 0
