"""A run's outputs (``reports.outputs.OutputRow``) as a terminal table, JSON Lines or CSV.

The table is for reading in a terminal of ``width`` columns (default 100): one line per output with the item,
its question, references and output cut to fit (``…``), an indented line with the item's context when it has
one, and one with its scores (``✗`` marks a failure). JSON Lines and CSV carry every text in full, for pandas,
jq or a spreadsheet; each row has ``schema_version`` (``OUTPUTS_SCHEMA_VERSION``) so a file can be read back
after a field is renamed. In the CSV, list fields are JSON arrays and each scorer that scored any listed
output is a column, empty where it does not apply.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any

from evaltune.reports.outputs import OutputRow, shorten

if TYPE_CHECKING:
    import pandas as pd

FORMATS = ("table", "jsonl", "csv")
OUTPUTS_SCHEMA_VERSION = 1
TABLE_WIDTH = 100
FIXED_COLUMNS = ["schema_version", "item", "sample", "question", "context", "references", "output", "tags",
                 "failed", "generation_id"]


def output_record(row: OutputRow) -> dict[str, Any]:
    """One output as a JSON Lines record: every text in full, only the scores that apply."""
    return {"schema_version": OUTPUTS_SCHEMA_VERSION, "item": row.item, "sample": row.sample,
            "question": row.question, "context": row.context, "references": row.references, "output": row.output,
            "tags": row.tags, "scores": row.scores, "failed": row.failed, "generation_id": row.generation_id}


def outputs_frame(rows: Sequence[OutputRow]) -> pd.DataFrame:
    """The rows as a table: the fixed columns, list fields as JSON arrays, then one column per scorer."""
    import pandas as pd  # here, not at the top: the command line imports this module for its help text

    scorers = sorted({name for row in rows for name in row.scores})
    records = []
    for row in rows:
        record = output_record(row)
        for name in ("references", "tags", "failed"):
            record[name] = json.dumps(record[name], ensure_ascii=False)
        del record["scores"]
        records.append({**record, **row.scores})
    # dtype=object keeps each value as it is: a sample index of 0 stays "0", not "0.0" beside an empty cell.
    return pd.DataFrame(records, columns=FIXED_COLUMNS + [s for s in scorers if s not in FIXED_COLUMNS],
                        dtype=object)


def write_outputs(rows: Sequence[OutputRow], fmt: str, out: IO[str], width: int = TABLE_WIDTH) -> None:
    """Write ``rows`` to ``out`` as ``fmt``: table, jsonl or csv."""
    if fmt == "jsonl":
        out.writelines(json.dumps(output_record(row), ensure_ascii=False) + "\n" for row in rows)
    elif fmt == "csv":
        outputs_frame(rows).to_csv(out, index=False, lineterminator="\n")
    elif fmt == "table":
        out.write(outputs_table(rows, width))
    else:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


# Bidirectional overrides and isolates: they would reorder how the rest of the line reads.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def one_line(text: str) -> str:
    """``text`` on one line that a terminal shows as it is: whitespace runs become one space, and control
    characters (an escape sequence from a model could recolour or rewrite the terminal) and bidirectional
    overrides show as their code (``\\x1b``, ``\\u202e``)."""
    flat = " ".join(text.split())
    return "".join(_code(ch) if unicodedata.category(ch) == "Cc" or ch in _BIDI else ch for ch in flat)


def _code(ch: str) -> str:
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


def clip(text: str, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with ``…``, padded to ``width``."""
    return shorten(one_line(text), width).ljust(width)


def _widths(rows: Sequence[OutputRow], width: int) -> list[int]:
    """Item, question, reference and output column widths that fill ``width`` with two-space gaps."""
    item = min(24, max([len("item")] + [len(item_label(r)) for r in rows]))
    rest = max(30, width - item - 6)
    question, reference = rest * 40 // 100, rest * 15 // 100
    return [item, question, reference, rest - question - reference]


def item_label(row: OutputRow) -> str:
    """The item's key, with ``#N`` for sample N > 0."""
    return row.item if row.sample == 0 else f"{row.item} #{row.sample}"


def score_text(row: OutputRow) -> str:
    """``answer_match 1 · exact_match 0 ✗ · token_f1 0.4``: the scores that apply, failures marked."""
    failed = set(row.failed)
    return " · ".join(f"{name} {value:.3g}{' ✗' if name in failed else ''}" for name, value in row.scores.items())


def outputs_table(rows: Sequence[OutputRow], width: int = TABLE_WIDTH) -> str:
    """The rows as lines of at most ``width`` characters (see the module docstring)."""
    widths = _widths(rows, width)
    indent = " " * (widths[0] + 2)
    under = max(10, width - len(indent))

    def line(cells: list[str]) -> str:
        return "  ".join(clip(cell, w) for cell, w in zip(cells, widths, strict=True)).rstrip()

    lines = [line(["item", "question", "reference", "output"])]
    for row in rows:
        lines.append(line([item_label(row), row.question, " | ".join(row.references) or "—", row.output or "(empty)"]))
        if row.context:
            lines.append((indent + clip("context: " + row.context, under)).rstrip())
        lines.append((indent + clip(score_text(row) or "no scores", under)).rstrip())
    return "\n".join(lines) + "\n"
