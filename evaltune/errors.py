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
    from evaltune.metrics.registry import ScorerParamError, UnknownScorerError
    from evaltune.settings import SettingError

    try:
        yield
    except (SuiteError, BackendError, StoreError, UnknownScorerError, ScorerParamError, SettingError) as error:
        raise UserError(str(error)) from error


def check_scorer_names(names: Iterable[str], option: str = "--scorers") -> tuple[str, ...]:
    """The canonical ids of scorer names or ids (``similar(threshold=0.75)``); raises ``UserError`` for the first
    unknown name (with the closest registered one), bad parameter, or two that are the same scorer."""
    from evaltune.metrics.registry import ScorerParamError, UnknownScorerError, scorer_id, scorer_names
    from evaltune.suggestions import did_you_mean

    ids: dict[str, str] = {}
    for name in names:
        try:
            canonical = scorer_id(name)
        except UnknownScorerError as error:
            hint = did_you_mean(error.name, scorer_names())
            message = f"{option}: unknown scorer '{error.name}'{hint}; 'evaltune scorers list' shows them all"
            raise UserError(message) from None
        except ScorerParamError as error:
            raise UserError(f"{option}: {error}; 'evaltune scorers list' shows each scorer's parameters") from None
        if canonical in ids:
            raise UserError(f"{option}: '{ids[canonical]}' and '{name}' are the same scorer ({canonical}); "
                            "name it once")
        ids[canonical] = name
    return tuple(ids)


def scorers_option(text: str, option: str = "--scorers") -> tuple[str, ...]:
    """``--scorers a,similar(threshold=0.7)`` as canonical ids (commas inside an id do not split it)."""
    from evaltune.metrics.scorer_params import split_ids

    return check_scorer_names(split_ids(text), option)


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
