"""Agreement: Krippendorff's alpha against published worked examples, Cohen's kappa, and over stored ratings."""

from __future__ import annotations

from collections import Counter

import pytest

from evaltune.db import Store
from evaltune.db.ratings import Assignment
from evaltune.feedback_ui.adjudication import adjudicate, item_ratings
from evaltune.feedback_ui.agreement import cohen_kappa, krippendorff_alpha, unit_disagreement, units_from_matrix
from evaltune.feedback_ui.agreement_data import campaign_agreement, most_disagreed, pair_kappas
from evaltune.feedback_ui.answers import PairAnswer, SingleAnswer
from evaltune.feedback_ui.auth import PermissionDenied
from evaltune.feedback_ui.campaigns import create_campaign
from evaltune.feedback_ui.queue import claim_next, submit_rating
from tests.fixtures.feedback_seed import Seeded, seed_store

_ = None
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers x 12 units, 1-5.
# Published: nominal .743, ordinal .815, interval .849, ratio .797.
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, _, _, _],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, _, 3],
    [_, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, _],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, _],
]
# Wikipedia's computational example for Krippendorff's alpha: 3 coders x 15 units. Nominal .691, interval .811.
WIKIPEDIA = [
    [_, _, _, _, _, 3, 4, 1, 2, 1, 1, 3, 3, _, 3],
    [1, _, 2, 1, 3, 3, 4, 3, _, _, _, _, _, _, _],
    [_, _, 2, 1, 3, 4, 4, _, 2, 1, 1, 3, 3, _, 4],
]


@pytest.mark.parametrize(("level", "published"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849),
                                                  ("ratio", 0.797)])
def test_alpha_matches_krippendorffs_worked_example(level: str, published: float) -> None:
    assert round(krippendorff_alpha(units_from_matrix(KRIPPENDORFF_2011), level), 3) == published  # type: ignore[arg-type,operator]


def test_alpha_matches_the_wikipedia_example() -> None:
    units = units_from_matrix(WIKIPEDIA)
    assert round(krippendorff_alpha(units, "nominal"), 3) == 0.691  # type: ignore[arg-type]
    assert round(krippendorff_alpha(units, "interval"), 3) == 0.811  # type: ignore[arg-type]


def test_alpha_edge_cases() -> None:
    assert krippendorff_alpha([Counter({1: 2}), Counter({2: 2})]) == 1.0  # perfect agreement
    assert krippendorff_alpha([Counter({1: 2}), Counter({1: 3})]) is None  # one value only: undefined
    assert krippendorff_alpha([Counter({1: 1}), Counter({2: 1})]) is None  # nothing pairable
    assert krippendorff_alpha([Counter({"a": 1, "b": 1}), Counter({"a": 1, "b": 1})]) < 0  # systematic disagreement


def test_cohen_kappa_textbook_example() -> None:
    # 50 proposals, two readers (Wikipedia, "Cohen's kappa"): yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> 0.4
    table = {("yes", "yes"): 20, ("yes", "no"): 5, ("no", "yes"): 10, ("no", "no"): 15}
    assert cohen_kappa(table) == pytest.approx(0.4)
    assert cohen_kappa({(1, 1): 3, (5, 5): 3}, "quadratic") == pytest.approx(1.0)
    near = cohen_kappa({(4, 5): 1, (5, 4): 1, (1, 1): 2}, "quadratic")
    far = cohen_kappa({(1, 5): 1, (5, 1): 1, (4, 4): 2}, "quadratic")
    assert near is not None and far is not None and near > far
    assert cohen_kappa({}) is None and unit_disagreement(Counter({1: 1, 5: 1}), "interval") == 4.0


def _rate_all(store: Store, seeded: Seeded, user: str, campaign: int, answer_for: object) -> None:
    while True:
        with store.session_scope() as s:
            r = claim_next(s, seeded.users[user], campaign)
            if r is None:
                return
            submit_rating(s, seeded.users[user], r.assignment_id, answer_for(r))  # type: ignore[operator]


def test_stored_ratings_give_alpha_kappa_and_the_most_disagreed_items(store: Store) -> None:
    seeded = seed_store(store, items=4)
    with store.session_scope() as s:
        single = create_campaign(s, None, name="s", run_ids=seeded.run_ids[:1], overlap=2).id
        pairs = create_campaign(s, None, name="p", run_ids=seeded.run_ids, pairwise=True, overlap=2).id
    _rate_all(store, seeded, "ann1", single, lambda r: SingleAnswer(likert=4, hallucination=False))
    _rate_all(store, seeded, "ann2", single,
              lambda r: SingleAnswer(likert=4 if r.campaign_item_id % 2 else 1, hallucination=False))
    # A/B: both annotators always prefer run 1's output, whichever side it was shown on.
    _rate_all(store, seeded, "ann1", pairs, lambda r: PairAnswer(choice="b" if r.flipped else "a"))
    _rate_all(store, seeded, "ann2", pairs, lambda r: PairAnswer(choice="b" if r.flipped else "a"))
    with store.session_scope() as s:
        flips = {f for (f,) in s.query(Assignment.flipped).all()}
        by_question = {q.question: q for q in campaign_agreement(s, single, pairwise=False)}
        assert by_question["likert"].items == 4 and by_question["likert"].alpha is not None
        assert by_question["likert"].alpha < 0.5
        assert by_question["hallucination"].alpha is None  # everyone said no: undefined, not "perfect"
        choice = campaign_agreement(s, pairs, pairwise=True)[0]
        assert choice.ratings == 8 and choice.alpha is None  # all chose the same output once sides are undone
        kappas = pair_kappas(s, single, "likert")
        assert kappas[0]["annotators"] == "ann1 / ann2" and kappas[0]["shared items"] == 4
        top = most_disagreed(s, single, "likert", "ordinal")
        assert [row["disagreement"] for row in top] == [3.0, 3.0]
        assert all(row["answers"] in ("1×1, 4×1",) for row in top)
        assert not most_disagreed(s, pairs, "choice", "nominal")
    assert flips  # sides were drawn at random per reservation


def test_only_admins_adjudicate(store: Store) -> None:
    seeded = seed_store(store, items=2)
    with store.session_scope() as s:
        campaign = create_campaign(s, None, name="s", run_ids=seeded.run_ids[:1], overlap=2).id
    _rate_all(store, seeded, "ann1", campaign, lambda r: SingleAnswer(likert=5, hallucination=False))
    _rate_all(store, seeded, "ann2", campaign, lambda r: SingleAnswer(likert=1, hallucination=True,
                                                                     hallucinated_span="Capital"))
    with store.session_scope() as s:
        item_id = most_disagreed(s, campaign, "likert", "ordinal")[0]["campaign item"]
        with pytest.raises(PermissionDenied):
            adjudicate(s, seeded.users["ann1"], item_id, {"likert": 3})
        with pytest.raises(ValueError, match="not an answer"):
            adjudicate(s, seeded.users["admin"], item_id, {"choice": "first"})
        adjudicate(s, seeded.users["admin"], item_id, {"likert": 2, "hallucination": True}, note="span is real")
        adjudicate(s, seeded.users["admin"], item_id, {"likert": 1, "hallucination": True}, note="worse")
        detail = item_ratings(s, seeded.users["admin"], item_id)
    assert detail.decision == {"likert": 1, "hallucination": True} and detail.note == "worse"
    assert sorted(r["likert"] for r in detail.ratings) == [1, 5] and "run" in detail.outputs[0][0]
