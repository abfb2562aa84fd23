"""``evaltune lineage``: rating -> row -> dataset -> job -> adapter -> run, for a model version or a run."""

from __future__ import annotations

import click

from evaltune.errors import UserError, user_errors


@click.command()
@click.argument("spec")
def lineage(spec: str) -> None:
    """Show where SPEC (model:ID, run:ID, or a model version id) came from, back to the base model."""
    from evaltune.db.engine import open_store
    from evaltune.retune.lineage import trace

    with user_errors():
        store = open_store()
    try:
        with store.sessions() as session:
            lines = trace(session, spec)
    except (LookupError, ValueError) as error:
        raise UserError(str(error.args[0])) from error
    finally:
        store.close()
    for line in lines:
        click.echo(line)
