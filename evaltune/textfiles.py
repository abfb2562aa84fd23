"""Reading the text files users write (suites, gate files, dataset files): strict UTF-8 and strict YAML.

One reader for every part, so that every file gets the same checks and the same kind of message: the file and
line, what is wrong there, and the fix. Each part turns ``FileProblem`` into its own error type (a suite error,
a gate-file error). This module imports nothing else of evaltune's, so every part may use it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

# libyaml's parser (when PyYAML was built with it) reads large files about 50 times faster.
try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # a PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

SYNTAX_HINT = "; check the indentation there, and quote text that contains any of : # { } [ ] , ?"


class FileProblem(ValueError):
    """A file cannot be read as text or YAML. ``where`` is ``path`` or ``path:line``; ``problem`` says what is
    wrong there and how to fix it."""

    def __init__(self, where: str, problem: str, record: int | None = None):
        super().__init__(f"{where}: {problem}")
        self.where, self.problem, self.record = where, problem, record


class LineDict(dict[Any, Any]):
    """A YAML mapping that remembers the (1-based) line it starts on, for error messages."""

    line: int = 0


def read_text(path: Path, source: str | None = None) -> str:
    """The file's text, without a byte-order mark. Raises ``FileProblem`` when it is missing, a folder,
    unreadable, or not UTF-8 (naming the line and the byte). ``source`` names the file in messages."""
    source = source or str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FileProblem(source, "file not found; check the path") from None
    except IsADirectoryError:
        raise FileProblem(source, "is a folder, not a file; name the file") from None
    except OSError as err:
        raise FileProblem(source, f"cannot be read: {err.strerror}") from None
    try:
        # utf-8-sig drops a byte-order mark, which spreadsheet exports add to the first column name.
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        bad = raw[err.start : err.start + 1].hex()
        raise FileProblem(f"{source}:{line}",
                          f"is not valid UTF-8 (byte 0x{bad} on line {line}); save the file as UTF-8") from None


class _StrictLoader(_SafeLoader):
    """SafeLoader that rejects duplicate keys (plain YAML keeps the last one, silently) and non-text keys, and
    records the line where each mapping starts."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> Any:
    data = LineDict()
    data.line = node.start_mark.line + 1
    yield data
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be plain text", key_node.start_mark
            )
        if key in data:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key '{key}' (each key may appear once)", key_node.start_mark
            )
        data[key] = loader.construct_object(value_node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_yaml(text: str, source: str) -> Any:
    """The YAML document in ``text`` (read from ``source``). Syntax errors and duplicate keys name the line."""
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else 0
        problem = err.problem or err.context or "invalid YAML"
        # Syntax errors usually come from indentation or an unquoted special character.
        hint = "" if isinstance(err, yaml.constructor.ConstructorError) else SYNTAX_HINT
        raise FileProblem(f"{source}:{line}", f"invalid YAML on line {line}: {problem}{hint}") from None
    except yaml.reader.ReaderError as err:
        line = text[: err.position].count("\n") + 1
        code = err.character if isinstance(err.character, int) else ord(err.character)
        raise FileProblem(
            f"{source}:{line}", f"invalid YAML on line {line}: {err.reason} (0x{code:02x}); remove that character"
        ) from None
    except yaml.YAMLError as err:
        raise FileProblem(source, f"invalid YAML: {' '.join(str(err).split())}") from None


def read_yaml(path: Path, source: str | None = None) -> Any:
    """The YAML document in the file ``path``, read by ``read_text`` and ``parse_yaml``."""
    source = source or str(path)
    return parse_yaml(read_text(path, source), source)


def json_lines(text: str, source: str) -> list[tuple[int, Any]]:
    """(line number, parsed value) for each non-blank line of JSON Lines ``text``; a bad line raises
    ``FileProblem`` naming its number (and ``record``, the 1-based number of the record it would have been)."""
    records: list[tuple[int, Any]] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((line_no, json.loads(line)))
        except json.JSONDecodeError as err:
            raise FileProblem(f"{source}:{line_no}", f"line {line_no} is not valid JSON ({err.msg} at column "
                              f"{err.colno}); write one JSON object per line", record=len(records) + 1) from None
    return records
