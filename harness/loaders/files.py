"""Reading suite files: strict UTF-8 and strict YAML, with line numbers for messages."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from evaltune import textfiles
from evaltune.harness.suite import Item, SuiteError


def read_text(path: Path, source: str | None = None) -> str:
    """The file's text (``evaltune.textfiles.read_text``). Raises ``SuiteError`` naming the file and line."""
    try:
        return textfiles.read_text(path, source)
    except textfiles.FileProblem as problem:
        raise SuiteError(problem.where, problem.problem) from None


def read_yaml(path: Path, source: str | None = None) -> Any:
    """The YAML document in ``path`` (``evaltune.textfiles.read_yaml``: strict UTF-8, no duplicate keys,
    mappings that know their line). Raises ``SuiteError`` naming the file and line."""
    try:
        return textfiles.read_yaml(path, source)
    except textfiles.FileProblem as problem:
        raise SuiteError(problem.where, problem.problem) from None


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
    try:
        return textfiles.json_lines(text, source)
    except textfiles.FileProblem as problem:
        raise SuiteError(problem.where, problem.problem, item=f"#{problem.record}") from None


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
