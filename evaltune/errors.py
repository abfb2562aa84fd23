"""The one error type the command line turns into a one-line message and exit code 2."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import click


class UserError(Exception):
    """Something the user can fix: a bad suite, an unknown model, an unreachable endpoint."""


@contextmanager
def user_errors() -> Iterator[None]:
    """Re-raise the library's user-facing errors as ``UserError`` (their messages already say the fix)."""
    from evaltune.db.engine import StoreError
    from evaltune.harness.backends.base import BackendError
    from evaltune.harness.suite import SuiteError
    from evaltune.metrics.registry import UnknownScorerError
    from evaltune.settings import SettingError

    try:
        yield
    except (SuiteError, BackendError, StoreError, UnknownScorerError, SettingError) as error:
        raise UserError(str(error)) from error


def check_scorer_names(names: Iterable[str], option: str = "--scorers") -> None:
    """Raise ``UserError`` for the first unregistered name, naming the option and the closest registered name."""
    from evaltune.metrics.registry import UnknownScorerError, all_scorers, get_scorer
    from evaltune.suggestions import did_you_mean

    for name in names:
        try:
            get_scorer(name)
        except UnknownScorerError:
            hint = did_you_mean(name, (spec.name for spec in all_scorers()))
            message = f"{option}: unknown scorer '{name}'{hint}; 'evaltune scorers list' shows them all"
            raise UserError(message) from None


def click_error_line(error: click.ClickException) -> str:
    """A click error (a bad option value, a missing argument, an unknown command) as one line that names the
    command and where its help is, instead of click's four-line usage block."""
    message = " ".join(error.format_message().split())
    ctx = getattr(error, "ctx", None)
    if ctx is None:
        return message
    return f"{ctx.command_path}: {message} (see '{ctx.command_path} --help')"


def show_click_error(error: click.ClickException) -> None:
    """Print ``error`` on stderr as ``error: ...`` in one line; a group called with no command shows its help."""
    if type(error).__name__ == "NoArgsIsHelpError":  # click 8.2+; its "message" is the help text
        error.show()
        return
    click.echo(f"error: {click_error_line(error)}", err=True)
