"""SuiteSpec loaders: turn a suite name, a suite file, an item file or a dataset id into a ``SuiteSpec``.

load("regression")                     # a built-in suite (harness/suites/regression.yaml)
load("suites/release.yaml")            # a suite file (format: harness.loaders.yaml_suite)
load("items.jsonl")                    # a generic item file, .jsonl or .csv (harness.loaders.generic)
load("bbq:../benchdata/bbq")           # a public format by name (FORMATS) and its path
load("hf:owner/name")                  # a Hugging Face dataset (split "test"; "hf:owner/name:split")
load("task.yaml")                      # an lm-evaluation-harness task file (harness.loaders.lm_eval_task)
"""

from __future__ import annotations

from pathlib import Path

from evaltune.harness.builtin import builtin_path, builtin_suites
from evaltune.harness.loaders.formats import FORMATS, HUB_FORMAT, FormatLoader, is_format, load_format
from evaltune.harness.loaders.generic import load as load_items_file
from evaltune.harness.loaders.hub import load_hub
from evaltune.harness.loaders.lm_eval_task import is_lm_eval_task
from evaltune.harness.loaders.yaml_suite import read_suite_file
from evaltune.harness.suite import SuiteError, SuiteSpec

__all__ = ["FORMATS", "FormatLoader", "load_suite", "read_suite_file"]

SUITE_SUFFIXES = (".yaml", ".yml")
ITEM_SUFFIXES = (".jsonl", ".csv")


def load_suite(spec: str | Path) -> SuiteSpec:
    """The suite ``spec`` names (see the module docstring). Raises ``SuiteError`` saying what it tried."""
    text = str(spec)
    prefix, _, rest = text.partition(":")
    if prefix == HUB_FORMAT and rest:
        dataset, _, split = rest.partition(":")
        return load_hub(dataset, split=split or "test")
    if rest and is_format(prefix):  # a built-in format or one an installed package adds
        return load_format(prefix, Path(rest))
    path = Path(text).expanduser()
    suffix = path.suffix.lower()
    if suffix in SUITE_SUFFIXES:
        return load_format("lm_eval", path) if is_lm_eval_task(path) else read_suite_file(path)
    if suffix in ITEM_SUFFIXES:
        return load_items_file(path)
    if text in builtin_suites():
        return read_suite_file(builtin_path(text))
    raise SuiteError(
        text,
        "is not a built-in suite, a suite file (.yaml), an item file (.jsonl, .csv), "
        f"FORMAT:PATH or hf:DATASET; built-in suites: {', '.join(builtin_suites()) or 'none'}; "
        f"formats: {', '.join(FORMATS)}",
    )
