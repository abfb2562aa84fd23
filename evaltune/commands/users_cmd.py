"""``evaltune users add NAME --role ROLE`` and ``evaltune users list``."""

from __future__ import annotations

import sys

import click

from evaltune.errors import UserError, user_errors
from evaltune.store import store_session

ROLES = ("admin", "annotator", "viewer")  # as db.ratings.ROLES; repeated so that --help needs no import


@click.group()
def users() -> None:
    """Accounts for the rating app (roles: admin, annotator, viewer)."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the account may do in the app.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
def add(name: str, role: str, password_stdin: bool) -> None:
    """Add an account; prompts for its password (at least 8 characters) unless --password-stdin."""
    from evaltune.feedback_ui.auth import AuthError, create_user

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    from evaltune.db.engine import open_store

    with user_errors():
        store = open_store()
    try:
        with store.session_scope() as session:
            account = create_user(session, name, role, password)
    except AuthError as error:
        raise UserError(str(error)) from error
    finally:
        store.close()
    click.echo(f"added {account.role} {account.name!r} (id {account.id})")


@users.command("list")
def list_users() -> None:
    """Every account: id, name, role, active."""
    from evaltune.feedback_ui.auth import list_users as stored_users

    with store_session() as session:
        rows = stored_users(session)
    if not rows:
        click.echo("no users yet: try 'evaltune users add NAME --role admin'")
        return
    for user in rows:
        click.echo(f"{user.id:>4}  {user.name:<24} {user.role:<10} {'active' if user.active else 'inactive'}")
