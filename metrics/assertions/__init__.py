"""Per-item assertions of a suite, promptfoo style: ``{type: contains, value: "812"}`` under an item's ``assert``.

    assertion = assertion_from_dict({"type": "max-words", "value": 120})     # checked completely at load time
    results = check_assertions(examples)      # one tuple per output, aligned with example.assertions
    verdict = item_verdict(example.assertions, results[0])
    metrics = assertion_metrics(examples, results)   # pass_rate (Wilson CI), assertion_score, pass_rate:<type>

``ASSERTION_TYPES`` is the catalogue the loader, the suite file's JSON Schema and the README table come from.
"""

from evaltune.metrics.assertions.catalogue import (
    ASSERTION_TYPES,
    PROMPTFOO_INSTEAD,
    AssertionField,
    AssertionType,
    assertion_labels,
    assertion_table_markdown,
)
from evaltune.metrics.assertions.check import check_assertions
from evaltune.metrics.assertions.parse import AssertionSpecError, assertion_from_dict
from evaltune.metrics.assertions.verdict import ItemVerdict, assertion_metrics, item_verdict

__all__ = [
    "ASSERTION_TYPES",
    "PROMPTFOO_INSTEAD",
    "AssertionField",
    "AssertionSpecError",
    "AssertionType",
    "ItemVerdict",
    "assertion_from_dict",
    "assertion_labels",
    "assertion_metrics",
    "assertion_table_markdown",
    "check_assertions",
    "item_verdict",
]
