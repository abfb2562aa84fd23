"""Small validation helpers shared by the loaders: every failure is a ``SuiteError``.

The helpers take the place being checked (file, item, field) so that each message can name
all three and say what to write instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from evaltune.harness.suite import SuiteError
from evaltune.suggestions import did_you_mean


def describe(value: Any) -> str:
    """A short, user-facing name for a value's type ("a list", "a number", "text", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, str):
        return "text"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


def check_keys(
    data: Mapping[Any, Any],
    allowed: Iterable[str],
    source: str,
    *,
    item: str | None = None,
    what: str = "key",
) -> None:
    """Raise on the first key of ``data`` not in ``allowed``, suggesting the closest allowed key."""
    allowed = sorted(allowed)
    for key in data:
        if key in allowed:
            continue
        hint = did_you_mean(key, allowed) if isinstance(key, str) else ""
        raise SuiteError(
            source,
            f"unknown {what} '{key}'{hint}; allowed: {', '.join(allowed)}",
            item=item,
            field=str(key),
        )


def check_limit(limit: int | None, source: str) -> int | None:
    """``limit`` must be None or a positive int; returns it unchanged."""
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise SuiteError(
            source, f"limit must be a positive whole number, not {describe(limit)}", field="limit"
        )
    return limit


def require_keys(row: Mapping[str, Any], keys: Iterable[str], source: str, item: str) -> None:
    """Raise when a record of a public data file lacks one of ``keys`` (a file of another format)."""
    for key in keys:
        if key not in row:
            raise SuiteError(
                source,
                f"missing '{key}'; is this file in the expected format (see the loader's docstring)?",
                item=item,
                field=key,
            )
