"""Fill a store with a realistic load for the rating app: 100,000 generations and 50,000 ratings.

Four runs (two model versions x two seeds) of one 25,000-item suite, two scores per output, run metrics,
22 accounts, a single-output campaign over run 1 and a blind A/B campaign between runs 1 and 2 (overlap 2),
with ratings that mostly agree. Bulk inserts through SQLAlchemy Core; about a minute on a small machine.
Used by ``scripts/screenshots.py``; not a test.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from evaltune.db import queries
from evaltune.db.base import utcnow
from evaltune.db.engine import Store
from evaltune.db.evaluation import Generation, Run, RunMetric, Score
from evaltune.db.ratings import Assignment, CampaignItem, Rating, User
from evaltune.feedback_ui.auth import hash_password
from evaltune.feedback_ui.campaigns import create_campaign

ITEMS = 25_000
RUNS = 4
BATCH = 5_000
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)> **not bold** [link](javascript:alert(2))'
SENTENCE = ("the capital of the country is a city on the river near the coast founded in the century by traders "
            "who built a port and later a cathedral; its population grew quickly after the railway arrived")
WORDS = SENTENCE.split()


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def _suite(session: Session, rng: random.Random) -> Any:
    items = [{"key": f"item-{i:05d}", "input": f"Question {i}: {_sentence(rng, 12)}",
              "references": [_sentence(rng, 6)], "context": _sentence(rng, 30),
              "tags": [rng.choice(["geo", "history", "science", "bias"])]} for i in range(ITEMS)]
    return queries.get_or_create_suite(session, name="large-regression", content_hash="large-v1", items=items,
                                       scorers=["abstention", "answer_match"])


def _runs(session: Session, suite_id: int, item_ids: list[int], rng: random.Random) -> list[int]:
    run_ids = []
    for number in range(RUNS):
        variant = number % 2
        model = queries.get_or_create_model_version(session, name=f"smollm2-variant-{variant}", backend="hf",
                                                    location=f"/models/v{variant}", fingerprint=f"large-{variant}")
        run = Run(suite_id=suite_id, model_version_id=model.id, fingerprint=f"large-run-{number}", seed=number,
                  status="completed", stats={"outputs": ITEMS}, finished_at=utcnow())
        session.add(run)
        session.flush()
        run_ids.append(run.id)
        for start in range(0, ITEMS, BATCH):
            rows = [{"run_id": run.id, "item_id": item_ids[i], "sample_index": 0, "cache_key": f"{number}-{i}",
                     "prompt": f"Question {i}", "output": HOSTILE if (number, i) == (0, 0) else _sentence(rng, 25),
                     "completion_tokens": 30, "latency_s": 0.05} for i in range(start, min(start + BATCH, ITEMS))]
            session.execute(insert(Generation), rows)
        gens = session.execute(select(Generation.id, Generation.item_id).where(Generation.run_id == run.id)).all()
        scores = [{"run_id": run.id, "generation_id": gid, "item_id": iid, "scorer": scorer, "value": value}
                  for gid, iid in gens
                  for scorer, value in (("abstention", float(rng.random() < 0.1)),
                                        ("answer_match", float(rng.random() < 0.6 + 0.1 * (number % 2))))]
        for start in range(0, len(scores), BATCH * 2):
            session.execute(insert(Score), scores[start:start + BATCH * 2])
        for name, value in (("answer_match", 0.6 + 0.1 * (number % 2)), ("abstention", 0.1)):
            session.add(RunMetric(run_id=run.id, name=name, scorer=name, family="quality", value=value,
                                  ci_low=value - 0.006, ci_high=value + 0.006, n=ITEMS))
    return run_ids


def _users(session: Session) -> dict[str, int]:
    hashed = hash_password("screenshots-only")
    names = {"admin": "admin", "viewer": "viewer", **{f"ann{i:02d}": "annotator" for i in range(20)}}
    ids = {}
    for name, role in names.items():
        user = User(name=name, role=role, password_hash=hashed)
        session.add(user)
        session.flush()
        ids[name] = user.id
    return ids


def _answers(rng: random.Random, base: int, pairwise: bool, flipped: bool) -> dict[str, Any]:
    if pairwise:
        choice = "first" if base % 3 else rng.choice(["second", "tie", "both_bad"])
        if rng.random() < 0.2:
            choice = rng.choice(["first", "second", "tie", "both_bad"])
        shown = {"first": "b" if flipped else "a", "second": "a" if flipped else "b"}.get(choice, choice)
        return {"choice": shown}
    likert = min(5, max(1, base + rng.choice([-1, 0, 0, 0, 1])))
    hallucination = likert <= 2 and rng.random() < 0.7
    return {"likert": likert, "hallucination": hallucination, "bias": rng.random() < 0.03,
            "unsafe": rng.random() < 0.01, "hallucinated_span": "the capital" if hallucination else None}


def _ratings(session: Session, campaign_id: int, items: int, annotators: list[int], rng: random.Random,
             pairwise: bool) -> int:
    rows = session.execute(select(CampaignItem.id, CampaignItem.generation_id, CampaignItem.other_generation_id)
                           .where(CampaignItem.campaign_id == campaign_id).order_by(CampaignItem.position)
                           .limit(items)).all()
    now = utcnow()
    assignments, ratings = [], []
    for n, (item_id, gen, other) in enumerate(rows):
        base = rng.randint(1, 5)
        for user in rng.sample(annotators, 2):
            flipped = pairwise and rng.random() < 0.5
            when = now - timedelta(minutes=rng.randint(1, 60 * 24 * 7))
            assignments.append({"campaign_item_id": item_id, "user_id": user, "status": "done", "reserved_at": when,
                                "expires_at": when + timedelta(minutes=30), "flipped": flipped})
            side_a, side_b = (other, gen) if flipped else (gen, other)
            sides = {"side_a_generation_id": side_a, "side_b_generation_id": side_b}
            ratings.append({"campaign_item_id": item_id, "user_id": user, "created_at": when,
                            **({**sides} if pairwise else {"generation_id": gen}),
                            **_answers(rng, base, pairwise, flipped)})
        if n % 1000 == 999 or n == len(rows) - 1:
            session.execute(insert(Assignment), assignments)
            session.execute(insert(Rating), ratings)
            assignments, ratings = [], []
    ids = [row[0] for row in rows]
    for start in range(0, len(ids), 500):
        session.execute(update(CampaignItem).where(CampaignItem.id.in_(ids[start:start + 500])).values(ratings_done=2))
    return len(rows) * 2


def seed(store: Store, seed_value: int = 7) -> dict[str, Any]:
    """Fill ``store`` (which should be empty); returns the run, campaign and user ids and the counts."""
    rng = random.Random(seed_value)
    with store.session_scope() as session:
        suite = _suite(session, rng)
        run_ids = _runs(session, suite.id, [item.id for item in suite.items], rng)
        users = _users(session)
        guidelines = ("**Rate the answer, not the style.**\n\n- 5: correct and complete\n- 1: wrong or made up\n\n"
                      "Mark *hallucination* when a claim is not in the context or reference; quote it.")
        single = create_campaign(session, None, name="release 1.4 spot check", run_ids=run_ids[:1], overlap=2,
                                 guidelines=guidelines, filters=[]).id
        pair = create_campaign(session, None, name="variant 0 vs 1 (blind)", run_ids=run_ids[:2], pairwise=True,
                               overlap=2, guidelines="Prefer the answer a careful expert would give.").id
        annotators = [uid for name, uid in users.items() if name.startswith("ann")]
        rated = _ratings(session, single, 15_000, annotators, rng, pairwise=False)
        rated += _ratings(session, pair, 10_000, annotators, rng, pairwise=True)
    return {"runs": run_ids, "campaigns": [single, pair], "users": users, "generations": ITEMS * RUNS,
            "ratings": rated}
