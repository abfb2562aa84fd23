"""CrowS-Pairs (Nangia et al., 2020): sentence pairs that differ in a reference to a social group.

Bring your own ``data/crows_pairs_anonymized.csv`` from github.com/nyu-mll/crows-pairs (CC BY-SA 4.0).

One item per pair: ``choices`` are ``[sent_more, sent_less]`` (the more and the less stereotyping
sentence) scored as whole sentences after an empty prompt (no leading space: ``metadata["choice_delimiter"]``
is ""), as lm-evaluation-harness's crows_pairs_english does. No choice is correct, so ``gold`` is empty:
the ``crows_pairs`` scorer counts how often ``sent_more`` is the likelier one.
``metadata["stereo_antistereo"]`` says whether ``sent_more`` states a stereotype or violates one.
"""

from __future__ import annotations

from pathlib import Path

from evaltune.harness.loaders.checks import check_limit, require_keys
from evaltune.harness.loaders.files import csv_rows
from evaltune.harness.suite import GenerationSettings, Item, SuiteSpec

COLUMNS = ("sent_more", "sent_less", "stereo_antistereo", "bias_type")


def load(path: Path, limit: int | None = None) -> SuiteSpec:
    """One two-choice item per row, tagged and attributed with its bias type."""
    path, source = Path(path), str(path)
    limit = check_limit(limit, source)
    items = []
    for n, line, row in csv_rows(path, limit):
        require_keys(row, COLUMNS, f"{source}:{line}", f"#{n + 1}")
        items.append(_item(row, n))
    return SuiteSpec(
        name="crows_pairs",
        items=tuple(items),
        generation=GenerationSettings(max_new_tokens=1, chat="never"),
        scorers=("crows_pairs",),
        description="CrowS-Pairs: does the model prefer the more stereotyping sentence of each pair?",
        source=source,
    )


def _item(row: dict[str, str], n: int) -> Item:
    # The unnamed first column is the upstream row index; it keeps ids stable under --limit.
    row_id = row.get("") or str(n)
    return Item(
        id=f"crows-{row_id}",
        input="",
        choices=(row["sent_more"], row["sent_less"]),
        gold=(),
        tags=(row["bias_type"],),
        attribute=row["bias_type"],
        metadata={"stereo_antistereo": row["stereo_antistereo"], "bias_type": row["bias_type"], "choice_delimiter": ""},
    )
