"""``evaltune models list``."""

from __future__ import annotations

import click

from evaltune.store import store_session


@click.group()
def models() -> None:
    """Model versions known to the store."""


@models.command("list")
def list_models() -> None:
    """Every stored model version: id, name, backend, location, parent (for adapters)."""
    from evaltune.db import queries

    with store_session() as session:
        rows = queries.list_model_versions(session)
        if not rows:
            click.echo("no model versions yet: they are recorded by 'evaltune run'")
            return
        click.echo(f"{'id':>4}  {'name':<32} {'backend':<7} {'parent':>6}  location")
        for mv in rows:
            parent = str(mv.parent_id) if mv.parent_id else "-"
            click.echo(f"{mv.id:>4}  {mv.name[:32]:<32} {mv.backend:<7} {parent:>6}  {mv.location}"
                       + (f" + adapter {mv.adapter_path}" if mv.adapter_path else ""))
