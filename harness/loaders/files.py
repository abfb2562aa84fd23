"""Reading suite files: strict UTF-8 and strict YAML, with line numbers for messages."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from evaltune.harness.suite import Item, SuiteError

# libyaml's parser (when PyYAML was built with it) reads large files about 50 times faster.
try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # a PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

SYNTAX_HINT = "; check the indentation there, and quote text that contains any of : # { } [ ] , ?"


class LineDict(dict[Any, Any]):
    """A YAML mapping that remembers the (1-based) line it starts on, for error messages."""

    line: int = 0


def read_text(path: Path, source: str | None = None) -> str:
    """The file's text. Raises ``SuiteError`` when it is missing or not UTF-8 (naming the line)."""
    source = source or str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SuiteError(source, "file not found; check the path") from None
    except IsADirectoryError:
        raise SuiteError(source, "is a folder, not a file; name the file") from None
    except OSError as err:
        raise SuiteError(source, f"cannot be read: {err.strerror}") from None
    try:
        # utf-8-sig drops a byte-order mark, which spreadsheet exports add to the first column name.
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        bad = raw[err.start : err.start + 1].hex()
        raise SuiteError(
            f"{source}:{line}",
            f"is not valid UTF-8 (byte 0x{bad} on line {line}); save the file as UTF-8",
        ) from None


class _StrictLoader(_SafeLoader):
    """SafeLoader that rejects duplicate keys and records where each mapping starts."""


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


def read_yaml(path: Path, source: str | None = None) -> Any:
    """The YAML document in ``path``. Syntax errors and duplicate keys name the line."""
    source = source or str(path)
    text = read_text(path, source)
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else 0
        problem = err.problem or err.context or "invalid YAML"
        # Syntax errors usually come from indentation or an unquoted special character.
        hint = "" if isinstance(err, yaml.constructor.ConstructorError) else SYNTAX_HINT
        raise SuiteError(f"{source}:{line}", f"invalid YAML on line {line}: {problem}{hint}") from None
    except yaml.reader.ReaderError as err:
        line = text[: err.position].count("\n") + 1
        code = err.character if isinstance(err.character, int) else ord(err.character)
        raise SuiteError(
            f"{source}:{line}", f"invalid YAML on line {line}: {err.reason} (0x{code:02x}); remove that character"
        ) from None
    except yaml.YAMLError as err:
        raise SuiteError(source, f"invalid YAML: {' '.join(str(err).split())}") from None


def where(source: str, data: Any) -> str:
    """``source`` with the line of ``data`` appended when the YAML reader recorded one."""
    line = getattr(data, "line", 0)
    return f"{source}:{line}" if line else source


def resolve(base_dir: Path, name: str) -> Path:
    """A path from a suite file, relative to the folder of that file unless absolute."""
    path = Path(name).expanduser()
    return path if path.is_absolute() else base_dir / path


def jsonl_records(text: str, source: str) -> list[tuple[int, Any]]:
    """(line number, parsed value) for each non-blank line; a bad line raises naming its number."""
    records: list[tuple[int, Any]] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((line_no, json.loads(line)))
        except json.JSONDecodeError as err:
            raise SuiteError(
                f"{source}:{line_no}",
                f"line {line_no} is not valid JSON ({err.msg} at column {err.colno}); "
                "write one JSON object per line",
                item=f"#{len(records) + 1}",
            ) from None
    return records


def items_from_files(
    path: Path, pattern: str, read_file: Callable[[Path], list[Item]], limit: int | None, what: str
) -> tuple[Item, ...]:
    """The items of ``path`` (one file) or of every ``pattern`` file in the folder ``path`` (sorted by
    name), read by ``read_file``, stopping once ``limit`` items are in hand."""
    files = sorted(path.glob(pattern)) if path.is_dir() else [path]
    if not files:
        raise SuiteError(str(path), f"the folder holds no {pattern} files; pass {what} or its folder")
    items: list[Item] = []
    for file in files:
        items.extend(read_file(file))
        if limit is not None and len(items) >= limit:
            break
    return tuple(items[:limit])


def csv_rows(path: Path, limit: int | None = None) -> Iterator[tuple[int, int, dict[str, str]]]:
    """(row index, line number, row) for the first ``limit`` data rows of a CSV file read as ``read_text``
    reads it (UTF-8, a byte-order mark allowed)."""
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    for index, row in enumerate(reader):
        if limit is not None and index >= limit:
            return
        yield index, reader.line_num, row
