"""Installed packages that add to evaltune: entry points in the groups ``evaltune.scorers``, ``evaltune.loaders``
and ``evaltune.backends``.

    [project.entry-points."evaltune.scorers"]
    keywords = "my_package.scorers"            # a module whose import registers scorers with @scorer

One loader for every group, so that a plugin that fails is reported alike everywhere: one line naming the
distribution, the entry point and the error (never a traceback), and the other plugins still load. This module
imports nothing else of evaltune's: the scorer registry, the suite loaders and the backend registry all use it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from importlib.metadata import EntryPoint, entry_points
from typing import Any

SCORERS_GROUP = "evaltune.scorers"
LOADERS_GROUP = "evaltune.loaders"
BACKENDS_GROUP = "evaltune.backends"
BUILT_IN = "built-in"

# The plugin being imported right now, so that what its import registers knows where it came from.
_loading: ContextVar[str | None] = ContextVar("evaltune_plugin_loading", default=None)


def plugin_entry_points(group: str, name: str | None = None) -> list[EntryPoint]:
    """The installed entry points of ``group`` (only those called ``name``, when given), in a stable order."""
    found = entry_points(group=group) if name is None else entry_points(group=group, name=name)
    return sorted(found, key=lambda point: (point.name, point.value))


def origin(point: EntryPoint) -> str:
    """Where an entry point comes from, as ``scorers list`` shows it: ``plugin DIST VERSION``."""
    dist = point.dist
    return f"plugin {dist.name} {dist.version}" if dist is not None else f"plugin {point.value}"


def loading_origin() -> str | None:
    """The origin of the plugin whose entry point is being loaded now; None outside a plugin's import."""
    return _loading.get()


def problem_line(point: EntryPoint, problem: str) -> str:
    """One line for a plugin that cannot be used: ``plugin DIST VERSION: the scorer plugin 'x' (module): ...``."""
    kind = point.group.removeprefix("evaltune.").removesuffix("s")
    return f"{origin(point)}: the {kind} plugin '{point.name}' ({point.value}) {' '.join(problem.split())}"


def load_plugin(point: EntryPoint, accept: Callable[[Any], None] | None = None) -> tuple[Any, str | None]:
    """Import an entry point and hand what it names to ``accept`` (which raises to refuse it).

    Returns (the loaded object, None), or (None, one line saying why it failed): a plugin's failure never
    propagates, whatever it raises on import.
    """
    token = _loading.set(origin(point))
    try:
        loaded = point.load()
        if accept is not None:
            accept(loaded)
        return loaded, None
    except Exception as error:  # a plugin's bug, whatever its kind, is the plugin's problem, reported in one line
        detail = str(error) or "(no message)"
        return None, problem_line(point, f"failed to import: {type(error).__name__}: {detail}")
    finally:
        _loading.reset(token)
