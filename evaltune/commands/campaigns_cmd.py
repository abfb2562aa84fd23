"""``evaltune campaigns create``, ``campaigns list``, ``campaigns show N``, ``campaigns close N`` and
``campaigns open N``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from evaltune.errors import UserError, user_errors
from evaltune.store import store_session

FILTER_HELP = ("Repeatable: suite=NAME, tag=TAG, or SCORER OP VALUE with OP one of > >= < <= == != "
               "(e.g. 'abstention==0', 'grounded_hallucination>0.5'). Each name must be one the runs have: "
               "their suite, a tag of their items, a scorer that scored them.")


def _run_ids(text: str) -> list[int]:
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise UserError(f"--runs {text!r}: give run ids separated by commas, e.g. 3,4") from None


def _guidelines(path: Path) -> str:
    from evaltune import textfiles

    try:
        return textfiles.read_text(path)
    except textfiles.FileProblem as problem:
        raise UserError(f"--guidelines {problem}") from None


@click.group()
def campaigns() -> None:
    """Rating campaigns: which outputs annotators rate, by how many, with which guidelines."""


@campaigns.command("create")
@click.option("--runs", "runs_text", required=True, help="Run ids, comma-separated (two with --pairwise).")
@click.option("--filter", "filters", multiple=True, help=FILTER_HELP)
@click.option("--overlap", default=2, show_default=True, type=click.IntRange(min=1),
              help="Different annotators who rate each item.")
@click.option("--guidelines", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A markdown file shown beside every task.")
@click.option("--pairwise", is_flag=True, help="Blind A/B between the two runs' outputs for the same items.")
@click.option("--name", default="", help="A name for the campaign (default: from the runs).")
@click.option("--select", "selection", type=click.Choice(["all", "informative"]), default="all", show_default=True,
              help="Which outputs to ask about: all that pass the filters, or (with --budget) the informative ones: "
                   "near a scorer's threshold, where scorers disagree, or whose pass/fail flipped between the runs.")
@click.option("--budget", type=click.IntRange(min=1), default=None,
              help="With --select informative: the judgements (ratings) to spend; at most BUDGET // overlap items "
                   "are chosen.")
@click.option("--seed", default=0, show_default=True, help="Breaks ties in an informative selection.")
@click.option("--hide-references", is_flag=True,
              help="Do not show annotators the items' reference answers (to judge without anchoring on them).")
def create(runs_text: str, filters: tuple[str, ...], overlap: int, guidelines: Path | None, pairwise: bool,
           name: str, selection: str, budget: int | None, seed: int, hide_references: bool) -> None:
    """Create a campaign from runs; prints its id and how many items it has. A/B pairs whose two outputs are
    identical (after whitespace normalisation) are recorded as ties, not asked."""
    from evaltune.db.engine import open_store
    from evaltune.feedback_ui.campaigns import CampaignError, campaign_notes, create_campaign, ruled_ties_by_campaign
    from evaltune.feedback_ui.progress import campaign_progress

    text = _guidelines(guidelines) if guidelines else ""
    with user_errors():
        store = open_store()
    try:
        with store.session_scope() as session:
            campaign = create_campaign(session, None, name=name, run_ids=_run_ids(runs_text), filters=filters,
                                       overlap=overlap, pairwise=pairwise, guidelines=text, selection=selection,
                                       budget=budget, seed=seed, hide_references=hide_references)
            progress = campaign_progress(session, [campaign.id])[0]
            ties = ruled_ties_by_campaign(session, [campaign.id]).get(campaign.id, 0)
            chosen, run_ids = dict(campaign.selection), list(campaign.run_ids)
    except CampaignError as error:
        raise UserError(str(error)) from error
    finally:
        store.close()
    kind = "A/B pairs" if pairwise else "outputs"
    click.echo(f"campaign {campaign.id} {campaign.name!r}: {progress.items} {kind}, overlap {overlap}"
               f" ({progress.wanted} ratings wanted)")
    for line in campaign_notes(chosen, ties, progress.items, run_ids):
        click.echo(f"  {line}")


@campaigns.command("list")
def list_campaigns() -> None:
    """Every campaign with its progress."""
    from sqlalchemy import select

    from evaltune.db.ratings import Campaign
    from evaltune.feedback_ui.campaigns import ruled_ties_by_campaign
    from evaltune.feedback_ui.progress import campaign_progress

    with store_session() as session:
        rows = campaign_progress(session)
        ties = ruled_ties_by_campaign(session)
        informative = {cid for cid, chosen in session.execute(select(Campaign.id, Campaign.selection))
                       if (chosen or {}).get("method", "all") != "all"}
    if not rows:
        click.echo("no campaigns yet: try 'evaltune campaigns create --runs RUN_ID'")
        return
    for c in rows:
        extra = (f", {ties[c.campaign_id]} identical pairs tied by rule" if c.campaign_id in ties else "") + \
                (", informative selection" if c.campaign_id in informative else "")
        click.echo(f"{c.campaign_id:>4}  {c.name[:30]:<30} {'A/B' if c.pairwise else 'single':<6} {c.status:<6}"
                   f" k={c.overlap}  {c.ratings}/{c.wanted} ratings, {c.complete_items}/{c.items} items complete"
                   f"{extra}")


@campaigns.command("show")
@click.argument("campaign_id", type=int)
@click.option("--items", "shown", default=10, show_default=True, type=click.IntRange(min=0),
              help="How many of its items to list, in queue order, with why each was chosen.")
def show(campaign_id: int, shown: int) -> None:
    """One campaign: its runs, filters, progress, the pairs tied by rule and how its items were chosen."""
    from sqlalchemy import select

    from evaltune.db.evaluation import SuiteItem
    from evaltune.db.ratings import Campaign, CampaignItem
    from evaltune.feedback_ui.campaigns import annotators_by_campaign, campaign_notes, ruled_ties_by_campaign
    from evaltune.feedback_ui.progress import campaign_progress

    with store_session() as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            raise UserError(f"there is no campaign {campaign_id}; see 'evaltune campaigns list'")
        progress = campaign_progress(session, [campaign_id])[0]
        ties = ruled_ties_by_campaign(session, [campaign_id]).get(campaign_id, 0)
        given = annotators_by_campaign(session).get(campaign_id)
        items = session.execute(select(SuiteItem.key, CampaignItem.selected_because)
                                .join(SuiteItem, SuiteItem.id == CampaignItem.item_id)
                                .where(CampaignItem.campaign_id == campaign_id)
                                .order_by(CampaignItem.position).limit(shown)).all()
        name, run_ids, selection = campaign.name, list(campaign.run_ids), dict(campaign.selection or {})
        filters = _filter_texts(campaign.item_filter or {})
    click.echo(f"campaign {campaign_id} {name!r}: {'A/B' if progress.pairwise else 'single output'} on run"
               f"{'s' if len(run_ids) > 1 else ''} {', '.join(map(str, run_ids))}, {progress.status}")
    click.echo(f"  filters: {'; '.join(filters) or 'none'}; for {', '.join(given) if given else 'every annotator'}")
    click.echo(f"  {progress.items} items, overlap {progress.overlap}: {progress.ratings}/{progress.wanted} ratings, "
               f"{progress.complete_items}/{progress.items} items complete")
    for line in campaign_notes(selection, ties, progress.items, run_ids) or ["every output that passes the filters"]:
        click.echo(f"  {line}")
    for key, because in items:
        click.echo(f"    {key}" + (f": {because}" if because else ""))


def _filter_texts(item_filter: dict[str, Any]) -> list[str]:
    """The stored filters as the user typed them."""
    texts = [f"suite={item_filter['suite']}"] if item_filter.get("suite") else []
    texts += [f"tag={tag}" for tag in item_filter.get("tags") or []]
    texts += [f"{rule['scorer']}{rule['op']}{rule['value']:g}" for rule in item_filter.get("scores") or []]
    return texts


@campaigns.command("close")
@click.argument("campaign_id", type=int)
def close(campaign_id: int) -> None:
    """Close campaign CAMPAIGN_ID: annotators get no more of its items; its ratings are kept, and a rating
    already being written is still stored. 'evaltune campaigns open' reopens it."""
    _change_status(campaign_id, "closed")


@campaigns.command("open")
@click.argument("campaign_id", type=int)
def reopen(campaign_id: int) -> None:
    """Reopen a closed campaign: annotators get what is left of its items again."""
    _change_status(campaign_id, "open")


def _change_status(campaign_id: int, status: str) -> None:
    from evaltune.db.engine import open_store
    from evaltune.feedback_ui.campaigns import CampaignError, change_status
    from evaltune.feedback_ui.progress import campaign_progress

    with user_errors():
        store = open_store()
    try:
        with store.session_scope() as session:
            campaign, before = change_status(session, campaign_id, status)
            name = campaign.name
            progress = campaign_progress(session, [campaign_id])[0]
    except CampaignError as error:
        raise UserError(str(error)) from error
    finally:
        store.close()
    if before == status:
        click.echo(f"campaign {campaign_id} {name!r} was already {status}")
        return
    kept = f"{progress.ratings} of {progress.wanted} ratings"
    if status == "closed":
        click.echo(f"closed campaign {campaign_id} {name!r}: annotators get no more of its items; {kept} kept "
                   f"('evaltune campaigns open {campaign_id}' reopens it)")
    else:
        click.echo(f"reopened campaign {campaign_id} {name!r}: {kept} so far; annotators get the rest")
