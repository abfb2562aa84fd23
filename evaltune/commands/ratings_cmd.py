"""``evaltune ratings export``."""

from __future__ import annotations

from pathlib import Path

import click

from evaltune.errors import UserError, user_errors


@click.group()
def ratings() -> None:
    """Ratings stored by the rating app."""


@ratings.command("export")
@click.option("--campaign", "campaign_id", type=int, help="Only this campaign's ratings (default: all).")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), required=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="File to write (replaced only once the export is complete).")
def export(campaign_id: int | None, fmt: str, output: Path) -> None:
    """Write one row per rating, with its prompt and output(s); A/B choices name the preferred generation.
    Every row carries its schema_version (see docs/dataset_formats.md)."""
    from evaltune.db.engine import open_store
    from evaltune.db.ratings import Campaign
    from evaltune.feedback_ui.export import export_ratings

    with user_errors():
        store = open_store()
    try:
        with store.sessions() as session:
            if campaign_id is not None and session.get(Campaign, campaign_id) is None:
                raise UserError(f"--campaign: no campaign {campaign_id}; see 'evaltune campaigns list'")
            count = export_ratings(session, output, fmt, campaign_id)
    except OSError as error:
        raise UserError(f"{output}: cannot write the export ({error.strerror}); choose another -o path") from error
    finally:
        store.close()
    click.echo(f"wrote {count} ratings to {output}")
