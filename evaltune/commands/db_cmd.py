"""``evaltune db upgrade``."""

from __future__ import annotations

import click

from evaltune.errors import user_errors


@click.group()
def db() -> None:
    """The store (SQLite in $EVALTUNE_HOME by default, or EVALTUNE_DB_URL)."""


@db.command()
def upgrade() -> None:
    """Apply pending schema migrations (they also apply automatically on first use)."""
    from evaltune.db.engine import current_revision, database_url, make_engine, safe_url
    from evaltune.db.engine import upgrade as apply_migrations

    with user_errors():
        engine = make_engine()
        applied = apply_migrations(engine)
        click.echo(f"{safe_url(database_url())}: "
                   + (f"applied {', '.join(applied)}" if applied else "already up to date")
                   + f"; at revision {current_revision(engine)}")
