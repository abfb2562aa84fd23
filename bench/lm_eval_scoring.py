"""The regression suite's scorers as lm-eval metrics, so that lm-eval's end-to-end process does the same work.

An lm-eval task scores through two hooks: ``process_results(doc, results)`` per document, and an
``aggregation`` function per metric over the values ``process_results`` returned. Here ``process_results``
hands every metric the document and its output, and each metric's aggregation scores the whole list with
the evaltune scorer of that name, in one batch as evaltune's own runner does, and returns the scorer's
first aggregate. The task YAML (``task_yaml``) points at this module through ``!function utils.NAME``; the
task folder's ``utils.py`` re-exports it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from evaltune.metrics.records import Example
from evaltune.metrics.registry import get_scorer

METRIC_PREFIX = "et_"  # keeps the names clear of lm-eval's own exact_match and friends


def document(item: Any, prompt: str) -> dict[str, Any]:
    """One line of the task's data file: what an evaltune scorer reads of a suite item."""
    return {"id": item.id, "input": prompt, "target": (item.references or [""])[0],
            "references": list(item.references), "context": item.context,
            "expect_abstention": item.expect_abstention, "tags": list(item.tags), "group": item.group,
            "attribute": item.attribute, "value": item.value, "metadata": item.metadata}


def task_yaml(task: str, data_file: str, generation: dict[str, Any], scorers: Sequence[str]) -> str:
    """The YAML text of a ``generate_until`` task whose metrics are ``scorers``."""
    metrics = "\n".join(
        f"  - metric: {METRIC_PREFIX}{name}\n    aggregation: !function utils.aggregate_{name}\n"
        f"    higher_is_better: true" for name in scorers)
    return (f"task: {task}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {json.dumps(data_file)}\n"
            f"test_split: test\noutput_type: generate_until\ndoc_to_text: '{{{{input}}}}'\n"
            f"doc_to_target: '{{{{target}}}}'\ngeneration_kwargs: {json.dumps(generation)}\n"
            f"process_results: !function utils.process_results\nmetric_list:\n{metrics}\n")


def utils_source(scorers: Sequence[str]) -> str:
    """The task folder's ``utils.py``: this module's hooks, one aggregation per scorer."""
    lines = ["from bench.lm_eval_scoring import aggregation, process_results  # noqa: F401"]
    lines += [f"aggregate_{name} = aggregation({name!r})" for name in scorers]
    return "\n".join(lines) + "\n"


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, Any]:
    """Every metric gets the document and the output; the scoring happens in the aggregations."""
    scored = {"doc": doc, "output": results[0]}
    return {f"{METRIC_PREFIX}{name}": scored for name in _SCORERS}


def aggregation(scorer: str) -> Callable[[list[dict[str, Any]]], float]:
    """lm-eval's aggregation for ``scorer``: score all outputs in one batch, return the first aggregate."""

    def aggregate(items: list[dict[str, Any]]) -> float:
        _SCORERS.add(scorer)
        spec = get_scorer(scorer)
        examples = [_example(item["doc"], item["output"]) for item in items]
        metrics = spec.aggregate(examples, spec.score_batch(examples))
        return metrics[0].value if metrics else float("nan")

    _SCORERS.add(scorer)
    return aggregate


_SCORERS: set[str] = set()  # filled by ``aggregation``, which utils.py calls for each of the task's scorers


def _example(doc: dict[str, Any], output: str) -> Example:
    return Example(item_id=doc["id"], prompt=doc["input"], output=output, references=tuple(doc["references"]),
                   context=doc["context"], expect_abstention=doc["expect_abstention"], tags=tuple(doc["tags"]),
                   group=doc["group"], attribute=doc["attribute"], value=doc["value"], metadata=doc["metadata"])
