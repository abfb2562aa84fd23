"""Score outputs produced elsewhere: a JSONL file in, the same lines with one field per scorer out."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evaltune import textfiles
from evaltune.errors import UserError
from evaltune.metrics.records import Example
from evaltune.metrics.registry import get_scorer

TEXT_LIST_FIELDS = ("references", "samples")


def score_file(
    input_path: str, output_path: str | None, scorer_names: Sequence[str]
) -> tuple[int, list[dict[str, Any]]]:
    """Score every line of ``input_path`` and write the lines, each with one field per scorer, to ``output_path``.

    Returns the number of lines and the run-level metrics (as dicts with family and direction).
    A malformed line stops everything before anything is written, with the file, line and field named.
    """
    specs = [get_scorer(name) for name in scorer_names]
    lines, examples = _read(Path(input_path))
    metrics: list[dict[str, Any]] = []
    for spec in specs:
        results = spec.score_batch(examples)
        for line, result in zip(lines, results, strict=True):
            line[spec.name] = result.value
        metrics += [m.__dict__ | {"family": spec.family, "higher_is_better": spec.higher_is_better}
                    for m in spec.aggregate(examples, results)]
    text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    if output_path:
        Path(output_path).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return len(lines), metrics


def _read(path: Path) -> tuple[list[dict[str, Any]], list[Example]]:
    try:
        records = textfiles.json_lines(textfiles.read_text(path), str(path))
    except textfiles.FileProblem as problem:
        raise UserError(str(problem)) from None
    lines: list[dict[str, Any]] = []
    examples: list[Example] = []
    for number, data in records:
        if not isinstance(data, dict):
            raise UserError(f"{path}:{number}: expected a JSON object, got {type(data).__name__}")
        examples.append(_example(path, number, data))
        lines.append(data)
    return lines, examples


def _example(path: Path, number: int, data: dict[str, Any]) -> Example:
    where = f"{path}:{number}"
    output = data.get("output")
    if not isinstance(output, str):
        raise UserError(f"{where}: field 'output': required, a string; add \"output\": \"...\"")
    references = data.get("references", [data["reference"]] if "reference" in data else [])
    fields: dict[str, Any] = {"references": references, "samples": data.get("samples", [])}
    for name in TEXT_LIST_FIELDS:
        value = fields[name]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UserError(f"{where}: field '{name}': expected a list of strings")
    for name in ("prompt", "context"):
        if data.get(name) is not None and not isinstance(data[name], str):
            raise UserError(f"{where}: field '{name}': expected a string")
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise UserError(f"{where}: field 'metadata': expected a JSON object such as {{\"pii_allow\": [\"...\"]}}")
    return Example(
        item_id=str(data.get("id", number)),
        prompt=data.get("prompt") or "",
        output=output,
        references=tuple(references),
        context=data.get("context"),
        expect_abstention=bool(data.get("expect_abstention", False)),
        samples=tuple(fields["samples"]),
        tags=tuple(data.get("tags", ())),
        group=data.get("group"),
        attribute=data.get("attribute"),
        value=data.get("value"),
        metadata=metadata,
    )
