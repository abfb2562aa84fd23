"""A campaign can hide the items' reference answers from its annotators on purpose (to judge without anchoring):
the Rate page then shows none and says so, and exports for other tools carry none either. Without it the right
answer is shown, "I don't know" included."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import update

from evaltune.db.engine import Store
from evaltune.db.evaluation import SuiteItem
from evaltune.feedback_ui.queue import claim_next
from evaltune.feedback_ui.rating_task import Task, load_task
from tests.conftest import Cli
from tests.fixtures.feedback_seed import seed_store, seed_users


def _first_task(store: Store, campaign_id: int) -> Task:
    with store.session_scope() as session:
        account = seed_users(session, {f"rater{campaign_id}": "annotator"})[f"rater{campaign_id}"]
        reservation = claim_next(session, account, campaign_id)
        assert reservation is not None
        return load_task(session, account, reservation)


def test_a_campaign_that_hides_references_shows_and_exports_none(store: Store, cli: Cli, tmp_path: Path) -> None:
    seed_store(store, items=3)
    with store.session_scope() as session:  # one item whose right answer is to abstain
        session.execute(update(SuiteItem).where(SuiteItem.key == "q0").values(references=[], expect_abstention=True))
    assert cli("campaigns", "create", "--runs", "1", "--overlap", "1", "--name", "shown")[0] == 0
    code, _out, err = cli("campaigns", "create", "--runs", "1", "--overlap", "1", "--name", "blind",
                          "--hide-references")
    assert code == 0, err

    shown, blind = _first_task(store, 1), _first_task(store, 2)
    assert (shown.item_key, shown.references, shown.expect_abstention, shown.references_hidden) == \
        ("q0", [], True, False)  # the Rate page says the right answer is "I don't know"
    assert (blind.item_key, blind.references, blind.expect_abstention, blind.references_hidden) == \
        ("q0", [], False, True)

    for campaign, expected in (("1", "I don't know"), ("2", "(hidden in this campaign)")):
        out_file = tmp_path / f"tasks{campaign}.json"
        assert cli("campaigns", "export", campaign, "--to", "labelstudio", "-o", str(out_file))[0] == 0
        first = json.loads(out_file.read_text())[0]["data"]
        assert first["item_key"] == "q0" and first["reference"] == expected
