"""The Compare page opens on two runs that share items (streamlit.testing), and says plainly, without an error
box, when no two runs do or when the admin picks two that do not."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaltune.db import Store, queries
from evaltune.db.evaluation import Generation, Run, Score
from evaltune.feedback_ui.runs_data import comparable_pair, shares_items
from tests.fixtures.app_pages import errors, open_page, texts
from tests.fixtures.feedback_seed import seed_store, seed_users


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """These tests need only SQLite (the shared ``store`` fixture opens it)."""
    return f"sqlite:///{tmp_path / 'store.db'}"


def _run_of_another_suite(store: Store, suite: str) -> int:
    """A completed run of a suite whose item keys no other suite uses (the newest run in the store)."""
    with store.session_scope() as s:
        items = [{"key": f"{suite}-{i}", "input": f"{suite} question {i}", "references": ["x"]} for i in range(3)]
        found = queries.get_or_create_suite(s, name=suite, content_hash=f"{suite}-v1", items=items,
                                            scorers=["answer_match"])
        model = queries.get_or_create_model_version(s, name=f"model-{suite}", backend="hf",
                                                    location=f"/models/{suite}", fingerprint=f"fp-{suite}")
        run = Run(suite_id=found.id, model_version_id=model.id, fingerprint=f"run-{suite}", status="completed",
                  stats={"outputs": 3})
        s.add(run)
        s.flush()
        for i, item in enumerate(found.items):
            gen = Generation(run_id=run.id, item_id=item.id, cache_key=f"{suite}-{i}", prompt=item.input,
                             output=f"{suite} answer {i}")
            s.add(gen)
            s.flush()
            s.add(Score(run_id=run.id, generation_id=gen.id, item_id=item.id, scorer="answer_match", value=1.0))
        return run.id


def test_compare_opens_on_the_newest_pair_that_shares_items(store: Store) -> None:
    seeded = seed_store(store, items=4)
    unrelated = _run_of_another_suite(store, "arithmetic")  # the newest run: it shares nothing with the others
    baseline, candidate = seeded.run_ids
    with store.sessions() as s:
        assert comparable_pair(s, [unrelated, candidate, baseline]) == (baseline, candidate)
        assert not shares_items(s, unrelated, candidate) and shares_items(s, baseline, candidate)

    at = open_page("admin", "compare")
    assert not errors(at)
    assert at.selectbox(key="cmp_base").value == baseline and at.selectbox(key="cmp_cand").value == candidate
    assert any(h.value.startswith("Verdict:") for h in at.subheader)

    at.selectbox(key="cmp_cand").set_value(unrelated).run()  # the admin picks a run of another suite
    assert not errors(at)
    assert f"Runs {baseline} and {unrelated} share no items" in texts(at)
    assert f"such as runs {baseline} and {candidate}" in texts(at)


def test_compare_with_no_pair_sharing_items_says_so_without_an_error(store: Store) -> None:
    with store.session_scope() as s:
        seed_users(s, {"view": "viewer"})
    _run_of_another_suite(store, "arithmetic")
    _run_of_another_suite(store, "geography")

    at = open_page("view", "compare")
    assert not errors(at)
    assert "No two of these runs share an item" in texts(at)
    assert not at.selectbox  # nothing to choose between
