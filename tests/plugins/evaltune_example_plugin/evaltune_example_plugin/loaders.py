"""The ``qa_lines`` format: one item per line, ``question | answer | another accepted answer``."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_qa_lines(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The items of a qa_lines file, as suite-file item mappings (evaltune checks them)."""
    items = []
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for number, line in enumerate(lines[:limit], start=1):
        question, *answers = (part.strip() for part in line.split("|"))
        items.append({"id": f"line-{number}", "input": question, "references": answers})
    return items
