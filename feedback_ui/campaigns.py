"""Rating campaigns: which outputs to rate (runs + filters), by how many annotators (overlap), and how.

A filter is a short string, several of which all apply:

- ``suite=NAME``: only runs of that suite;
- ``tag=TAG``: only items carrying that tag;
- ``SCORER OP VALUE`` with OP one of ``> >= < <= == !=``: only outputs whose score passes,
  e.g. ``abstention==0`` or ``grounded_hallucination>0.5``. For a pairwise campaign it is enough that either
  output passes.

Each name is checked against what the campaign's runs have (their suites, their items' tags, the scorers that
scored them): a misspelt one is refused with the closest name they do have, instead of leaving nothing to rate.

Campaign items of a single-output campaign that takes every output are written by one ``INSERT ... SELECT``: no
generation passes through Python. A pairwise campaign reads only the ids of its pairs, and the outputs of the few
pairs that are equal once every whitespace character is removed: those identical after whitespace normalisation
are recorded as ties by rule, never queued (``feedback_ui.selection``). An informative selection
(``select="informative"``) reads the runs' scores to choose where a budget of judgements teaches the most.

A campaign may be given to named annotators; one given to nobody in particular is open to every annotator.
An annotator sees and rates only the campaigns open to them (``campaigns_for``, checked again by the queue).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, and_, case, exists, func, insert, literal, null, or_, select
from sqlalchemy.orm import Session, aliased

from evaltune.db.evaluation import Generation, Run, Score, Suite, SuiteItem
from evaltune.db.ratings import Campaign, CampaignAnnotator, CampaignItem, RuledTie, User
from evaltune.feedback_ui.auth import Account, require_role
from evaltune.feedback_ui.selection import METHODS, PairRow, choose_informative, normalised, without_whitespace
from evaltune.feedback_ui.transactions import has_no_choices, has_tag
from evaltune.reports.human import not_overall_rates, ruled_ties_note, selection_note
from evaltune.reports.outputs import is_per_assertion
from evaltune.suggestions import did_you_mean

_OPS = {
    ">": lambda col, v: col > v,
    ">=": lambda col, v: col >= v,
    "<": lambda col, v: col < v,
    "<=": lambda col, v: col <= v,
    "==": lambda col, v: col == v,
    "!=": lambda col, v: col != v,
}
_SCORE = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(>=|<=|==|!=|>|<|=)\s*(-?[0-9.]+(?:e-?[0-9]+)?)\s*$")
FILTER_HELP = "suite=NAME, tag=TAG, or SCORER OP VALUE (OP: > >= < <= == !=), e.g. abstention==0"
STATUSES = ("open", "closed")


class CampaignError(ValueError):
    """A campaign cannot be created as asked; the message names the fix."""


@dataclass
class ItemFilter:
    """The parsed filters, stored on the campaign as JSON so that anyone can see how it was made."""

    suite: str | None = None
    tags: list[str] = field(default_factory=list)
    scores: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"suite": self.suite, "tags": self.tags, "scores": self.scores}


def parse_filters(texts: Sequence[str]) -> ItemFilter:
    """Parse filter strings (see the module docstring); raises ``CampaignError`` naming a bad one."""
    parsed = ItemFilter()
    for text in texts:
        key, _, value = text.partition("=")
        if key.strip() == "suite" and value.strip():
            parsed.suite = value.strip()
        elif key.strip() == "tag" and value.strip():
            parsed.tags.append(value.strip())
        elif match := _SCORE.match(text):
            scorer, op, number = match.groups()
            parsed.scores.append({"scorer": scorer, "op": "==" if op == "=" else op, "value": float(number)})
        else:
            raise CampaignError(f"cannot read the filter {text!r}; use {FILTER_HELP}")
    return parsed


def score_passes(generation_id: Any, rule: dict[str, Any]) -> ColumnElement[bool]:
    """A condition: the generation has a score from ``rule['scorer']`` that passes ``op value``."""
    return exists().where(
        Score.generation_id == generation_id,
        Score.scorer == rule["scorer"],
        _OPS[rule["op"]](Score.value, rule["value"]),
    )


def _conditions(session: Session, item_filter: ItemFilter, generations: Sequence[Any]) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [has_tag(session, tag) for tag in item_filter.tags]
    if item_filter.suite:
        conditions.append(Suite.name == item_filter.suite)
    for rule in item_filter.scores:
        conditions.append(or_(*(score_passes(g.id, rule) for g in generations)))
    return conditions


def _output_rows(session: Session, run_ids: list[int], item_filter: ItemFilter) -> Any:
    gen = aliased(Generation)
    return (
        select(gen.item_id, gen.id)
        .join(SuiteItem, SuiteItem.id == gen.item_id)
        .join(Run, Run.id == gen.run_id)
        .join(Suite, Suite.id == Run.suite_id)
        .where(gen.run_id.in_(run_ids), has_no_choices(session), *_conditions(session, item_filter, [gen]))
        .order_by(gen.id)
    )


def _every_output(session: Session, campaign_id: int, run_ids: list[int], item_filter: ItemFilter) -> None:
    """One ``INSERT ... SELECT`` of every output that passes the filters."""
    rows = _output_rows(session, run_ids, item_filter).order_by(None)
    first = rows.selected_columns[1]
    rows = rows.add_columns(func.row_number().over(order_by=first) - 1, null(), literal(campaign_id))
    columns = ["item_id", "generation_id", "position", "other_generation_id", "campaign_id"]
    session.execute(insert(CampaignItem).from_select(columns, rows))


def _pair_rows(session: Session, run_ids: list[int], item_filter: ItemFilter) -> tuple[list[PairRow], set[PairRow]]:
    """Every pair of the two runs' outputs for the same item and sample that passes the filters, in order, and
    those of them whose outputs are identical after whitespace normalisation."""
    first, second = aliased(Generation), aliased(Generation)
    maybe_same = without_whitespace(first.output) == without_whitespace(second.output)
    stmt = (
        select(first.item_id, first.id, second.id,
               case((maybe_same, first.output), else_=null()), case((maybe_same, second.output), else_=null()))
        .join(second, and_(second.item_id == first.item_id, second.sample_index == first.sample_index))
        .join(SuiteItem, SuiteItem.id == first.item_id)
        .join(Run, Run.id == first.run_id)
        .join(Suite, Suite.id == Run.suite_id)
        .where(first.run_id == run_ids[0], second.run_id == run_ids[1], has_no_choices(session))
        .where(*_conditions(session, item_filter, [first, second]))
        .order_by(first.id)
    )
    rows, identical = [], set()
    for item_id, first_id, second_id, first_output, second_output in session.execute(stmt):
        row = PairRow(item_id, first_id, second_id)
        rows.append(row)
        if first_output is not None and second_output is not None \
                and normalised(first_output) == normalised(second_output):
            identical.add(row)
    return rows, identical


def create_campaign(
    session: Session,
    actor: Account | None,
    *,
    name: str,
    run_ids: Sequence[int],
    filters: Sequence[str] = (),
    overlap: int = 1,
    pairwise: bool = False,
    guidelines: str = "",
    annotators: Sequence[int] = (),
    selection: str = "all",
    budget: int | None = None,
    seed: int = 0,
    hide_references: bool = False,
) -> Campaign:
    """Create a campaign and its items; ``actor`` must be an admin (None: the command line, trusted).

    ``annotators`` (user ids) gives the campaign to those annotators only; empty: to every annotator.
    ``hide_references``: the annotators are not shown the items' reference answers.

    Single output: one item per generation of the runs that passes the filters. Pairwise: exactly two
    runs, one item per shared suite item and sample, the first run's output recorded as ``generation_id``;
    a pair whose outputs are identical after whitespace normalisation is recorded as a ``RuledTie`` instead
    of an item (a campaign whose every pair is identical is created closed, with its ties and nothing to rate).
    ``selection``: ``all`` (every output or pair that passes the filters) or ``informative``: at most
    ``budget // overlap`` items, where a judgement teaches the most (``feedback_ui.selection``; ``seed`` breaks
    ties), each with its ``selected_because``; ``campaign.selection`` records how the items were chosen.
    Raises ``CampaignError`` for unknown runs, a pairwise campaign without two runs of one suite, a bad
    filter or one naming a suite, tag or scorer the runs lack, an overlap below 1, an unknown selection, a budget
    without ``informative`` (or one missing, or below the overlap, with it), filters that leave nothing to rate,
    or an informative selection that finds no informative item.
    """
    if actor is not None:
        require_role(actor, "admin")
    item_filter = parse_filters(filters)
    runs = _check_runs(session, list(dict.fromkeys(run_ids)), pairwise)
    check_filter_names(session, filters, runs)
    if overlap < 1:
        raise CampaignError("the overlap (ratings per item) must be at least 1")
    check_selection(selection, budget, overlap)
    campaign = Campaign(
        name=name.strip() or f"runs {', '.join(map(str, run_ids))}",
        run_ids=[run.id for run in runs],
        item_filter=item_filter.as_json(),
        overlap=overlap,
        pairwise=pairwise,
        guidelines=guidelines,
        hide_references=hide_references,
        status="open",
        selection={"method": "all"},
        created_by=actor.id if actor else None,
    )
    session.add(campaign)
    session.flush()
    _give_to(session, campaign.id, annotators)
    ids = [run.id for run in runs]
    if pairwise or selection != "all":
        _chosen_items(session, campaign, ids, item_filter, budget if selection == "informative" else None, seed)
    else:
        _every_output(session, campaign.id, ids, item_filter)
    stored = session.execute(select(func.count()).where(CampaignItem.campaign_id == campaign.id)).scalar_one()
    if not stored and not ruled_ties_by_campaign(session, [campaign.id]):
        # rowcount of INSERT ... SELECT is not reliable on every driver
        raise CampaignError("no outputs of these runs pass the filters: nothing to rate")
    if not stored:  # every pair identical: nothing to ask anyone, so no annotator is offered it
        campaign.status = "closed"
    return campaign


def check_selection(selection: str, budget: int | None, overlap: int) -> None:
    """Raise ``CampaignError`` unless ``selection`` and ``budget`` go together (see ``create_campaign``)."""
    if selection not in METHODS:
        raise CampaignError(f"unknown selection {selection!r}: choose {' or '.join(METHODS)}")
    if selection != "informative":
        if budget is not None:
            raise CampaignError("a budget only applies to an informative selection: add --select informative, or "
                                "leave --budget out to rate every output")
        return
    if budget is None:
        raise CampaignError("an informative selection needs a budget: give --budget N, the judgements to spend")
    if budget < overlap:
        raise CampaignError(f"a budget of {budget} judgement{'s' if budget != 1 else ''} cannot give one item its "
                            f"{overlap} ratings (overlap {overlap}): give a budget of at least {overlap}")


def _chosen_items(session: Session, campaign: Campaign, run_ids: list[int], item_filter: ItemFilter,
                  budget: int | None, seed: int) -> None:
    """Queue the pairs (or outputs) to ask about: identical pairs become ruled ties, and an informative selection
    keeps the most informative of the rest."""
    if campaign.pairwise:
        rows, identical = _pair_rows(session, run_ids, item_filter)
    else:
        rows = [PairRow(item_id, gid) for item_id, gid in session.execute(_output_rows(session, run_ids, item_filter))]
        identical = set()
    session.add_all(RuledTie(campaign_id=campaign.id, item_id=row.item_id, generation_id=row.generation_id,
                             other_generation_id=row.other_generation_id, rule="identical outputs")
                    for row in rows if row in identical)
    asked = [row for row in rows if row not in identical]
    chosen: list[tuple[PairRow, str | None]] = [(row, None) for row in asked]
    if budget:  # an informative selection (check_selection saw to it)
        picked = choose_informative(session, asked, run_ids, budget=budget, overlap=campaign.overlap, seed=seed)
        if asked and not picked.chosen:
            raise CampaignError(f"none of the {len(asked)} {'pairs' if campaign.pairwise else 'outputs'} that pass "
                                "the filters sits near a scorer's threshold, has scorers that disagree, or flipped "
                                "between the runs: nothing informative to choose; use --select all")
        campaign.selection = picked.summary
        chosen = list(picked.chosen)
    if chosen:
        session.execute(insert(CampaignItem), [
            {"campaign_id": campaign.id, "position": position, "item_id": row.item_id,
             "generation_id": row.generation_id, "other_generation_id": row.other_generation_id,
             "selected_because": because} for position, (row, because) in enumerate(chosen)])
    session.flush()


def campaign_notes(selection: dict[str, Any] | None, ties: int, items: int, run_ids: Sequence[int]) -> list[str]:
    """What the pages and the command line say of a campaign's ties by rule and of how its items were chosen."""
    lines = []
    if ties:
        lines.append(ruled_ties_note(ties) + ("; every pair was, so there is nothing to ask and the campaign is "
                                              "closed" if not items else ""))
    if selection_note(selection):
        runs = "run " + " and run ".join(map(str, run_ids))
        lines.append(f"{selection_note(selection)}; {not_overall_rates(runs)}")
    return [line[:1].upper() + line[1:] for line in lines]


def ruled_ties_by_campaign(session: Session, campaign_ids: Sequence[int] | None = None) -> dict[int, int]:
    """Campaign id -> how many of its pairs were identical and recorded as ties by rule (absent: none)."""
    stmt = select(RuledTie.campaign_id, func.count()).group_by(RuledTie.campaign_id)
    if campaign_ids is not None:
        stmt = stmt.where(RuledTie.campaign_id.in_(list(campaign_ids)))
    return {int(cid): int(n) for cid, n in session.execute(stmt)}


def _check_runs(session: Session, run_ids: list[int], pairwise: bool) -> list[Run]:
    if not run_ids:
        raise CampaignError("name at least one run (see 'evaltune runs list')")
    runs = list(session.execute(select(Run).where(Run.id.in_(run_ids))).scalars())
    missing = sorted(set(run_ids) - {run.id for run in runs})
    if missing:
        raise CampaignError(f"no run {', '.join(map(str, missing))} in the store; see 'evaltune runs list'")
    runs.sort(key=lambda run: run_ids.index(run.id))
    if pairwise and (len(runs) != 2 or runs[0].suite_id != runs[1].suite_id):
        raise CampaignError("a pairwise campaign compares exactly two runs of the same suite version")
    return runs


def check_filter_names(session: Session, filters: Sequence[str], runs: Sequence[Run]) -> None:
    """Raise ``CampaignError`` for a filter naming a suite, tag or scorer that none of ``runs`` has, with the
    closest name they do have and the list of them (such a filter would otherwise leave nothing to rate)."""
    suite_ids = {run.suite_id for run in runs}
    listed = f"run{'s' if len(runs) > 1 else ''} {', '.join(str(run.id) for run in runs)}"
    for text in filters:
        parsed = parse_filters([text])
        if parsed.suite is not None:
            suites = set(session.execute(select(Suite.name).where(Suite.id.in_(suite_ids))).scalars())
            _check_name(text, "suite", parsed.suite, suites, f"the suites of {listed}")
        if parsed.tags:
            tags = {str(tag) for item_tags in session.execute(select(SuiteItem.tags)
                                                              .where(SuiteItem.suite_id.in_(suite_ids))).scalars()
                    for tag in item_tags}
            for tag in parsed.tags:
                _check_name(text, "tag", tag, tags, f"the tags of the items of {listed}")
        for rule in parsed.scores:
            scorers = {name for name in session.execute(select(Score.scorer).distinct()
                                                        .where(Score.run_id.in_([run.id for run in runs]))).scalars()
                       if not is_per_assertion(name)}  # one assertion's rows are details of ``assertions``
            _check_name(text, "scorer", rule["scorer"], scorers, f"the scorers that scored {listed}",
                        "; to filter on another, score the runs with it first ('evaltune score RUN_ID --scorers NAME')")


def _check_name(text: str, kind: str, name: str, known: set[str], listed: str, fix: str = "") -> None:
    if name not in known:
        raise CampaignError(f"the filter {text.strip()!r}: unknown {kind} {name!r}{did_you_mean(name, known)}; "
                            f"{listed}: {', '.join(sorted(known)) or 'none'}{fix}")


def _give_to(session: Session, campaign_id: int, user_ids: Sequence[int]) -> None:
    wanted = sorted(set(user_ids))
    if not wanted:
        return
    found = dict(session.execute(select(User.id, User.role).where(User.id.in_(wanted))).all())
    wrong = [uid for uid in wanted if found.get(uid) not in ("annotator", "admin")]
    if wrong:
        raise CampaignError(f"users {', '.join(map(str, wrong))} are not annotators; a campaign is given to "
                            "annotators (see 'evaltune users list')")
    session.add_all(CampaignAnnotator(campaign_id=campaign_id, user_id=uid) for uid in wanted)
    session.flush()


def annotators_by_campaign(session: Session) -> dict[int, list[str]]:
    """Campaign id -> the names of the annotators it is given to; a campaign open to all is absent."""
    given: dict[int, list[str]] = {}
    for campaign_id, name in session.execute(
        select(CampaignAnnotator.campaign_id, User.name).join(User, User.id == CampaignAnnotator.user_id)
        .order_by(CampaignAnnotator.campaign_id, User.name)
    ):
        given.setdefault(campaign_id, []).append(name)
    return given


def _open_to(user_id: int) -> ColumnElement[bool]:
    """A condition on ``Campaign``: given to nobody in particular, or to this user."""
    given = select(CampaignAnnotator.campaign_id).where(CampaignAnnotator.campaign_id == Campaign.id)
    return or_(~given.exists(), given.where(CampaignAnnotator.user_id == user_id).exists())


def may_rate(session: Session, account: Account, campaign_id: int) -> bool:
    """Whether ``account`` may see and rate the campaign's items (admins: every campaign)."""
    if account.role == "admin":
        return True
    if account.role != "annotator":
        return False
    return session.execute(select(Campaign.id).where(Campaign.id == campaign_id, _open_to(account.id))).first() \
        is not None


def campaigns_for(session: Session, account: Account, status: str | None = "open") -> list[Campaign]:
    """The campaigns ``account`` may rate, newest first: every one for an admin, for an annotator those open
    to them; raises ``PermissionDenied`` for any other role."""
    require_role(account, "annotator")
    stmt = select(Campaign).order_by(Campaign.id.desc())
    if status:
        stmt = stmt.where(Campaign.status == status)
    if account.role != "admin":
        stmt = stmt.where(_open_to(account.id))
    return list(session.execute(stmt).scalars())


def list_campaigns(session: Session, status: str | None = None) -> list[Campaign]:
    """Campaigns, newest first (optionally only those with this status)."""
    stmt = select(Campaign).order_by(Campaign.id.desc())
    if status:
        stmt = stmt.where(Campaign.status == status)
    return list(session.execute(stmt).scalars())


def change_status(session: Session, campaign_id: int, status: str) -> tuple[Campaign, str]:
    """Open or close a campaign for a trusted caller (the command line); returns it and its status before.

    A closed campaign hands out no more items (``queue.claim_next`` refuses it) and is no longer listed to
    annotators; its items and ratings stay, and a rating already being written when it closed is still stored.
    Reopening it hands out what is left. Raises ``CampaignError`` for an unknown campaign or status."""
    if status not in STATUSES:
        raise CampaignError(f"a campaign is {' or '.join(STATUSES)}, not {status!r}")
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise CampaignError(f"there is no campaign {campaign_id}; see 'evaltune campaigns list'")
    before, campaign.status = campaign.status, status
    return campaign, before


def set_status(session: Session, actor: Account, campaign_id: int, status: str) -> None:
    """``change_status`` on behalf of ``actor``, who must be an admin (the Campaigns page)."""
    require_role(actor, "admin")
    change_status(session, campaign_id, status)
