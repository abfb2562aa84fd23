"""``evaltune users add NAME --role ROLE``, ``users list``, ``users reset-password NAME``, ``users unlock NAME``,
``users set-role NAME --role ROLE``. A password reset and a role change sign the account's browsers out."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import click

from evaltune.errors import UserError, user_errors
from evaltune.store import store_session

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

T = TypeVar("T")
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
    from evaltune.feedback_ui.auth import create_user

    password = _read_password(password_stdin)
    account = _in_store(lambda session: create_user(session, name, role, password))
    click.echo(f"added {account.role} {account.name!r} (id {account.id})")


@users.command("reset-password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the new password from the first line of standard input.")
def reset_password(name: str, password_stdin: bool) -> None:
    """Give NAME a new password (prompted twice unless --password-stdin), sign out its browsers and lift any
    log-in lock on it."""
    from evaltune.feedback_ui import auth

    user = _in_store(lambda session: auth.find_user(session, name).name)  # before asking for a password
    password = _read_password(password_stdin)
    cleared = _in_store(lambda session: auth.reset_password(session, user, password))
    click.echo(f"new password set for {user!r}" + (f"; {_failures(cleared)} no longer count" if cleared else ""))


@users.command("unlock")
@click.argument("name")
def unlock(name: str) -> None:
    """Let NAME log in again at once after too many failed log-ins (otherwise the lock lifts by itself when the
    failures leave the window, 15 minutes by default)."""
    from evaltune.feedback_ui import auth

    cleared = _in_store(lambda session: auth.unlock(session, name))
    if cleared:
        click.echo(f"unlocked {name.strip()!r}: {_failures(cleared)} no longer count")
    else:
        click.echo(f"{name.strip()!r} has no failed log-ins to clear")


@users.command("set-role")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the account may do in the app from now.")
def set_role(name: str, role: str) -> None:
    """Give NAME another role; its browsers are signed out and log in again with the new role."""
    from evaltune.feedback_ui import auth

    before, ended = _in_store(lambda session: auth.set_role(session, name, role))
    if before == role:
        click.echo(f"{name.strip()!r} is already {_a(role)}")
        return
    click.echo(f"{name.strip()!r} is now {_a(role)} (was {_a(before)}); {_sessions(ended)} signed out")


def _a(role: str) -> str:
    return f"an {role}" if role[0] in "aeiou" else f"a {role}"


def _sessions(count: int) -> str:
    return f"{count} browser session{'s' if count != 1 else ''}"


def _failures(count: int) -> str:
    return f"{count} failed log-in{'s' if count != 1 else ''}"


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


def _in_store(work: Callable[[Session], T]) -> T:
    """``work`` in one transaction of the store; an ``AuthError`` becomes a one-line error (exit 2)."""
    from evaltune.db.engine import open_store
    from evaltune.feedback_ui.auth import AuthError

    with user_errors():
        store = open_store()
    try:
        with store.session_scope() as session:
            return work(session)
    except AuthError as error:
        raise UserError(str(error)) from error
    finally:
        store.close()


@users.command("list")
def list_users() -> None:
    """Every account: id, name, role, active, and how many browsers are signed in with it."""
    from evaltune.feedback_ui.auth import list_users as stored_users
    from evaltune.feedback_ui.sessions import live_counts

    with store_session() as session:
        rows = stored_users(session)
        signed_in = live_counts(session)
    if not rows:
        click.echo("no users yet: try 'evaltune users add NAME --role admin'")
        return
    for user in rows:
        click.echo(f"{user.id:>4}  {user.name:<24} {user.role:<10} {'active' if user.active else 'inactive':<8}"
                   f"  {_sessions(signed_in.get(user.id, 0))}")
