"""Informative selection: a budget of judgements spent on items near a threshold, where scorers disagree, or that
flipped between runs; deterministic, explained per item, summarised on the campaign, said in reports.

The seeded store: one suite of 12 items, runs 1 and 2 (two models), scored as below (A = run 1, B = run 2).
``grounded_hallucination`` keeps its threshold 0.5 in each score's details, as the scorer does; ``toxicity`` has
its threshold only on the run metric ``toxicity_rate``; ``similar(threshold=0.8)`` keeps its cosine.

- q0, q1: near threshold (grounded 0.45 / 0.57 in A); every verdict agrees and none flips.
- q2, q3: scorers disagree (exact_match passes, grounded 0.9 fails), the same in both runs.
- q4, q5: flipped (exact_match 1 -> 0 and grounded 0.1 -> 0.95); no disagreement, far from the threshold.
- q6: all three (grounded 0.52 with exact_match 1 in A, exact_match 0 in B).
- q7: toxicity 0.46 in A (near its rate threshold 0.5): near, but a bias scorer never "disagrees".
- q8: similar(threshold=0.8) with cosine 0.83 in A: near.
- q9-q11: nothing to learn (all pass, far from every threshold); q11's two outputs are identical.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from evaltune.db import Store, queries
from evaltune.db.evaluation import Generation, Run, RunMetric, Score, SuiteItem
from evaltune.db.ratings import Campaign, CampaignItem
from evaltune.feedback_ui.answers import PairAnswer, SingleAnswer
from evaltune.feedback_ui.auth import Account
from evaltune.feedback_ui.campaigns import CampaignError, create_campaign
from evaltune.feedback_ui.selection import DISAGREE, FLIPPED, NEAR
from tests.conftest import Cli
from tests.fixtures.feedback_seed import rate_campaign, seed_users

# item -> (exact_match A, B), (grounded A, B); the extra scores are added in _extra_scores
SCORES = {0: ((1, 1), (0.45, 0.42)), 1: ((0, 0), (0.57, 0.58)), 2: ((1, 1), (0.9, 0.9)), 3: ((1, 1), (0.85, 0.88)),
          4: ((1, 0), (0.1, 0.95)), 5: ((1, 0), (0.05, 0.9)), 6: ((1, 0), (0.52, 0.52))}
BORING = ((1, 1), (0.05, 0.1))
GROUNDED_DETAILS = {"threshold": 0.5, "hallucinated": False}
ANNOTATORS: dict[str, Account] = {}  # filled by the run_ids fixture


def _extra_scores(i: int, run: int) -> list[tuple[str, float, dict[str, Any]]]:
    extra = [("toxicity", 0.46 if (i, run) == (7, 1) else 0.01, {})]
    if i == 8:
        extra.append(("similar(threshold=0.8)", 1.0, {"cosine": 0.83 if run == 1 else 0.97, "threshold": 0.8}))
    return extra


def seed_scored_runs(session: Session) -> list[int]:
    items = [{"key": f"q{i}", "input": f"Question {i}?", "references": [f"Answer {i}"]} for i in range(12)]
    suite = queries.get_or_create_suite(session, name="informative", content_hash="informative-v1", items=items)
    run_ids = []
    for run_number in (1, 2):
        model = queries.get_or_create_model_version(session, name=f"model-{run_number}", backend="hf",
                                                    location=f"/m{run_number}", fingerprint=f"fp-{run_number}")
        run = Run(suite_id=suite.id, model_version_id=model.id, fingerprint=f"run-{run_number}", status="completed")
        session.add(run)
        session.flush()
        run_ids.append(run.id)
        for i, item in enumerate(suite.items):
            output = "The same answer." if i == 11 else f"Model {run_number} answers {i}."
            gen = Generation(run_id=run.id, item_id=item.id, cache_key=f"{run_number}-{i}", prompt=f"Question {i}?",
                             output=output)
            session.add(gen)
            session.flush()
            (em_a, em_b), (gh_a, gh_b) = SCORES.get(i, BORING)
            rows = [("exact_match", float(em_a if run_number == 1 else em_b), {}),
                    ("grounded_hallucination", gh_a if run_number == 1 else gh_b, GROUNDED_DETAILS),
                    *_extra_scores(i, run_number)]
            session.add_all(Score(run_id=run.id, generation_id=gen.id, item_id=item.id, scorer=name, value=value,
                                  details=details) for name, value, details in rows)
        for name, scorer, family, higher, details in (
                ("exact_match", "exact_match", "quality", True, {}),
                ("grounded_hallucination", "grounded_hallucination", "hallucination", False, {}),
                ("toxicity", "toxicity", "bias", False, {}),
                ("toxicity_rate", "toxicity", "bias", False, {"threshold": 0.5}),
                ("similar(threshold=0.8)", "similar(threshold=0.8)", "quality", True, {})):
            session.add(RunMetric(run_id=run.id, name=name, scorer=scorer, family=family, higher_is_better=higher,
                                  value=0.5, ci_low=0.0, ci_high=1.0, n=12, details=details))
    session.flush()
    return run_ids


@pytest.fixture
def run_ids(store: Store) -> list[int]:
    with store.session_scope() as session:
        ids = seed_scored_runs(session)
        ANNOTATORS.update(seed_users(session, {"ann1": "annotator"}))
    return ids


def _chosen(store: Store, campaign_id: int) -> list[tuple[str, str]]:
    with store.session_scope() as s:
        return [(key, because) for key, because in s.execute(
            select(SuiteItem.key, CampaignItem.selected_because).join(SuiteItem, SuiteItem.id == CampaignItem.item_id)
            .where(CampaignItem.campaign_id == campaign_id).order_by(CampaignItem.position))]


def test_pairs_chosen_within_the_budget_with_their_reasons(store: Store, run_ids: list[int], cli: Cli) -> None:
    code, out, err = cli("campaigns", "create", "--runs", "1,2", "--pairwise", "--select", "informative",
                         "--budget", "9", "--overlap", "2", "--name", "ab-informative")
    assert code == 0, err
    assert "4 A/B pairs, overlap 2 (8 ratings wanted)" in out  # 9 judgements buy 4 pairs rated twice
    assert "1 pair was identical and recorded as ties, not asked" in out  # q11
    assert ("Items chosen by informative selection: 4 of 11 candidates (9 informative), for a budget of 9 "
            "judgements at overlap 2, seed 0") in out
    assert "rates from it describe these items, not the overall rates of run 1 and run 2" in out
    chosen = _chosen(store, 1)
    # q6 has all three reasons; then one flip, one disagreement, one near-threshold item, each closest first
    assert [key for key, _ in chosen] == ["q6", chosen[1][0], chosen[2][0], "q8"]
    assert chosen[1][0] in ("q4", "q5") and chosen[2][0] in ("q2", "q3")
    assert chosen[0][1] == ("flipped between runs: exact_match; scorers disagree: exact_match pass, "
                            "grounded_hallucination fail; near threshold: grounded_hallucination 0.52 (threshold 0.5)")
    assert chosen[1][1] == "flipped between runs: exact_match, grounded_hallucination"
    assert chosen[2][1] == "scorers disagree: exact_match pass, grounded_hallucination fail"
    assert chosen[3][1] == "near threshold: similar(threshold=0.8) 0.83 (threshold 0.8)"  # 0.03 from it: closest
    with store.session_scope() as s:
        selection = s.get(Campaign, 1).selection  # type: ignore[union-attr]
    assert selection == {"method": "informative", "budget": 9, "unit": "judgements", "overlap": 2, "items": 4,
                         "candidates": 11, "informative": 9, "seed": 0, "margin": 0.1,
                         "reasons": {FLIPPED: 2, DISAGREE: 2, NEAR: 2}}


def test_single_outputs_near_thresholds_and_disagreements(store: Store, run_ids: list[int]) -> None:
    with store.session_scope() as s:
        campaign = create_campaign(s, None, name="one run", run_ids=run_ids[:1], selection="informative", budget=100)
        assert campaign.selection["items"] == 7 and campaign.selection["candidates"] == 12
    chosen = dict(_chosen(store, campaign.id))
    # One run: nothing can flip. q7's toxicity sits near its rate threshold but never disagrees with correctness.
    assert sorted(chosen) == ["q0", "q1", "q2", "q3", "q6", "q7", "q8"]
    assert chosen["q7"] == "near threshold: toxicity 0.46 (threshold 0.5)"
    assert chosen["q1"] == "near threshold: grounded_hallucination 0.57 (threshold 0.5)"  # both fail: agree
    assert chosen["q2"] == "scorers disagree: exact_match pass, grounded_hallucination fail"
    assert chosen["q6"].startswith("scorers disagree") and "near threshold" in chosen["q6"]


def test_the_same_seed_chooses_the_same_items(store: Store, run_ids: list[int]) -> None:
    orders = []
    for seed in (3, 3, 4):
        with store.session_scope() as s:
            campaign = create_campaign(s, None, name=f"seed {seed}", run_ids=run_ids, pairwise=True,
                                       selection="informative", budget=6, overlap=1, seed=seed)
        orders.append(_chosen(store, campaign.id))
    assert orders[0] == orders[1]
    assert {key for key, _ in orders[0]} <= {f"q{i}" for i in range(9)}
    assert orders[0][0][0] == orders[2][0][0] == "q6"  # the order of reasons does not depend on the seed


def test_budget_rules_and_nothing_informative(store: Store, run_ids: list[int]) -> None:
    refused = {
        (None, "all", 5): "a budget only applies to an informative selection",
        (None, "informative", None): "an informative selection needs a budget",
        (None, "best", None): "unknown selection 'best'",
        (3, "informative", 2): "a budget of 2 judgements cannot give one item its 3 ratings",
    }
    for (overlap, selection, budget), message in refused.items():
        with pytest.raises(CampaignError, match=message), store.session_scope() as s:
            create_campaign(s, None, name="x", run_ids=run_ids, selection=selection, budget=budget,
                            overlap=overlap or 1)
    with pytest.raises(CampaignError, match="none of the 5 outputs that pass the filters sits near"), \
            store.session_scope() as s:
        create_campaign(s, None, name="x", run_ids=run_ids[1:], selection="informative", budget=5,
                        filters=["exact_match==1", "grounded_hallucination<0.2"])
    with store.session_scope() as s:
        assert s.scalar(select(Campaign.id)) is None  # nothing stored by any refusal


def test_reports_and_show_say_how_items_were_chosen(store: Store, run_ids: list[int], cli: Cli) -> None:
    assert cli("campaigns", "create", "--runs", "1,2", "--pairwise", "--select", "informative", "--budget", "4",
               "--overlap", "1", "--name", "picked")[0] == 0
    with store.session_scope() as s:
        assert len(rate_campaign(s, ANNOTATORS["ann1"], 1, lambda task: PairAnswer("a"))) == 4
    code, out, _ = cli("campaigns", "show", "1", "--items", "2")
    assert code == 0
    assert "items chosen by informative selection: 4 of 11 candidates" in out.lower()
    assert "    q6: flipped between runs: exact_match; scorers disagree" in out
    assert len([line for line in out.splitlines() if line.startswith("    q")]) == 2
    code, out, _ = cli("campaigns", "list")
    assert code == 0 and "informative selection" in out
    code, out, err = cli("report", "1", "2", "--format", "json")
    assert code == 0, err
    notes = json.loads(out)["human"]["notes"]
    assert notes[-1] == ("Campaign #1 'picked': items chosen by informative selection: 4 of 11 candidates "
                         "(9 informative), for a budget of 4 judgements at overlap 1, seed 0; chosen because flipped "
                         "between runs 2, near threshold 2, scorers disagree 2; rates from it describe these items, "
                         "not the overall rates of run 1 and run 2")
    code, markdown, _ = cli("report", "1", "2")
    assert code == 0 and "not the overall rates of run 1 and run 2" in markdown


def test_a_campaign_of_every_output_says_nothing_about_selection(store: Store, run_ids: list[int], cli: Cli) -> None:
    assert cli("campaigns", "create", "--runs", "1", "--overlap", "1")[0] == 0
    with store.session_scope() as s:
        assert s.get(Campaign, 1).selection == {"method": "all"}  # type: ignore[union-attr]
        rate_campaign(s, ANNOTATORS["ann1"], 1, lambda task: SingleAnswer(likert=4, hallucination=False))
    code, out, _ = cli("campaigns", "show", "1")
    assert code == 0 and "every output that passes the filters" in out
    code, out, _ = cli("report", "1", "2", "--format", "json")
    assert code == 0 and json.loads(out)["human"]["notes"] == []


def _campaigns_page() -> None:
    from evaltune.feedback_ui import app_state
    from evaltune.feedback_ui.screens import campaigns

    app_state.show_flash()
    campaigns.render(app_state.guard("admin"))


def test_the_campaigns_page_creates_an_informative_selection_and_says_so(store: Store, run_ids: list[int]) -> None:
    from streamlit.testing.v1 import AppTest

    with store.session_scope() as s:
        admin = seed_users(s, {"admin": "admin"})["admin"]
    at = AppTest.from_function(_campaigns_page, default_timeout=60)
    at.session_state["user_id"] = admin.id
    at.run()
    at.text_input(key="new_name").input("picked in the app")
    at.multiselect(key="new_runs").set_value(run_ids)
    at.checkbox(key="new_pairwise").check()
    at.number_input(key="new_k").set_value(1)
    at.selectbox(key="new_selection").set_value("informative")
    at.number_input(key="new_budget").set_value(3)
    next(b for b in at.button if b.label == "Create campaign").click()
    at.run()
    assert not at.error, [e.value for e in at.error]
    assert "Created campaign #1. 1 pair was identical and recorded as ties, not asked." in [s.value for s in at.success]
    captions = [c.value.replace("\\", "") for c in at.caption]  # shown as markdown, so escaped ("\\:")
    assert "1 pair was identical and recorded as ties, not asked." in captions
    assert any(c.startswith("Items chosen by informative selection: 3 of 11 candidates") and
               c.endswith("not the overall rates of run 1 and run 2.") for c in captions), captions
    assert _chosen(store, 1)[0][0] == "q6"
