"""The name a user probably meant, for every message that refuses an unknown one (a scorer, a suite's key, a
campaign filter's tag or suite, an account).

This module imports nothing else of evaltune's, so every part may use it (the loaders, the rating app, the
command line); ``harness.loaders.checks`` re-exports it for the loaders.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the choice closest to ``word``, or an empty string when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
