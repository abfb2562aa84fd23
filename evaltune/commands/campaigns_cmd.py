"""``evaltune campaigns create``, ``campaigns list``, ``campaigns close N`` and ``campaigns open N``."""

from __future__ import annotations

from pathlib import Path

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
def create(runs_text: str, filters: tuple[str, ...], overlap: int, guidelines: Path | None, pairwise: bool,
           name: str) -> None:
    """Create a campaign from runs; prints its id and how many items it has."""
    from evaltune.db.engine import open_store
    from evaltune.feedback_ui.campaigns import CampaignError, create_campaign
    from evaltune.feedback_ui.progress import campaign_progress

    text = _guidelines(guidelines) if guidelines else ""
    with user_errors():
        store = open_store()
    try:
        with store.session_scope() as session:
            campaign = create_campaign(session, None, name=name, run_ids=_run_ids(runs_text), filters=filters,
                                       overlap=overlap, pairwise=pairwise, guidelines=text)
            progress = campaign_progress(session, [campaign.id])[0]
    except CampaignError as error:
        raise UserError(str(error)) from error
    finally:
        store.close()
    kind = "A/B pairs" if pairwise else "outputs"
    click.echo(f"campaign {campaign.id} {campaign.name!r}: {progress.items} {kind}, overlap {overlap}"
               f" ({progress.wanted} ratings wanted)")


@campaigns.command("list")
def list_campaigns() -> None:
    """Every campaign with its progress."""
    from evaltune.feedback_ui.progress import campaign_progress

    with store_session() as session:
        rows = campaign_progress(session)
    if not rows:
        click.echo("no campaigns yet: try 'evaltune campaigns create --runs RUN_ID'")
        return
    for c in rows:
        click.echo(f"{c.campaign_id:>4}  {c.name[:30]:<30} {'A/B' if c.pairwise else 'single':<6} {c.status:<6}"
                   f" k={c.overlap}  {c.ratings}/{c.wanted} ratings, {c.complete_items}/{c.items} items complete")


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
