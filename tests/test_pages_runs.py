"""The Runs page shows the spans annotators marked, highlighted in the output they marked (streamlit.testing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaltune.db import Store
from evaltune.feedback_ui.answers import SingleAnswer
from evaltune.feedback_ui.campaigns import create_campaign
from evaltune.feedback_ui.rating_task import Task
from tests.fixtures.app_pages import errors, html_blocks, open_page
from tests.fixtures.feedback_seed import HOSTILE, rate_campaign, seed_store


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """These tests need only SQLite (the shared ``store`` fixture opens it)."""
    return f"sqlite:///{tmp_path / 'store.db'}"


def test_a_ratings_spans_are_highlighted_in_the_run_output_and_stay_text(store: Store) -> None:
    seeded = seed_store(store, items=2, outputs=[HOSTILE])
    with store.session_scope() as s:
        campaign = create_campaign(s, None, name="single", run_ids=seeded.run_ids[:1], overlap=1).id

    def mark_the_script(task: Task) -> SingleAnswer:
        output = task.outputs[0]
        start = output.find("<script>")
        if start < 0:
            return SingleAnswer(likert=4, hallucination=False)
        return SingleAnswer.marked(output, 2, [(start, start + len("<script>"))])

    with store.session_scope() as s:
        rate_campaign(s, seeded.users["ann1"], campaign, mark_the_script)

    at = open_page("view", "runs")
    at.selectbox(key="runs_run").set_value(seeded.run_ids[0]).run()
    assert not errors(at)
    [block] = html_blocks(at)  # the first output, shown in full, is the hostile one
    assert '&lt;script&gt;</mark>' in block and "<script" not in block and "<img" not in block
    assert any("spans annotators marked unsupported are highlighted" in c.value for c in at.caption)
    ratings = at.dataframe[-1].value
    assert ratings["hallucinated_span"].tolist() == ["<script>"] and "spans" not in ratings.columns
