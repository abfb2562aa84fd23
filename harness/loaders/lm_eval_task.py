"""lm-evaluation-harness task files (YAML) over local data files, read as suites.

    evaltune run path/to/task.yaml          # a .yaml that is an lm-eval task (a top-level task: and dataset_path:)
    evaltune run lm_eval:path/to/task.yaml  # the same, named explicitly

What is read, with lm-eval 0.4's meaning: ``task``, ``dataset_path`` (``json``, ``csv`` or ``parquet``) with
``dataset_kwargs.data_files`` (a path, a list, or a mapping of split to path(s); relative to the task file, else to
the current folder as lm-eval reads them), ``test_split`` (else ``validation_split``), ``output_type``
(``generate_until`` or ``multiple_choice``), ``doc_to_text``, ``doc_to_target``, ``doc_to_choice`` (a column name, a
Jinja template, or a list), ``description``, ``target_delimiter``, ``num_fewshot`` (absent or 0),
``generation_kwargs`` (``until``, ``max_gen_toks``, ``do_sample``, ``temperature``) and ``metric_list``:

- ``acc`` -> the ``choice_accuracy`` scorer, ``acc_norm`` -> ``choice_accuracy_norm`` (multiple choice);
- ``exact_match`` (generate_until) -> an ``equals`` assertion per item under the metric ``exact_match``: run metric
  ``pass_rate:exact_match``, lm-eval's strict comparison (no ``ignore_case`` and friends).

The data is read with ``datasets.load_dataset`` as lm-eval reads it, and the prompt is built as lm-eval builds it
(description, then the rendered ``doc_to_text``; choices scored as ``target_delimiter + choice``), so the numbers
equal lm-eval's on the same model. Anything that would run Python (``!function``, ``process_docs``,
``process_results``, ``filter_list``, ``class``) or that this reader does not do is refused, naming the key and the
line, rather than silently scored another way.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateError

from evaltune.harness.loaders.checks import check_limit, describe
from evaltune.harness.loaders.files import read_text
from evaltune.harness.prompt_variants import PromptSandbox  # the one bounded Jinja sandbox of suite templates
from evaltune.harness.suite import GenerationSettings, Item, SuiteError, SuiteSpec
from evaltune.metrics.assertions import AssertionSpecError, assertion_from_dict
from evaltune.metrics.records import Assertion
from evaltune.textfiles import FileProblem, parse_yaml

OUTPUT_TYPES = ("generate_until", "multiple_choice")
METRICS = {"multiple_choice": {"acc": "choice_accuracy", "acc_norm": "choice_accuracy_norm"},
           "generate_until": {"exact_match": "pass_rate:exact_match"}}
DATA_FORMATS = ("json", "csv", "parquet")
READ_KEYS = frozenset({
    "task", "dataset_path", "dataset_name", "dataset_kwargs", "test_split", "validation_split", "training_split",
    "fewshot_split", "output_type", "doc_to_text", "doc_to_target", "doc_to_choice", "description",
    "target_delimiter", "fewshot_delimiter", "num_fewshot", "generation_kwargs", "metric_list",
    # Read and ignored: they change nothing about the numbers.
    "metadata", "tag", "should_decontaminate", "doc_to_decontamination_query", "repeats", "task_alias"})
_TASK_LINE = re.compile(r"^task\s*:", re.MULTILINE)
_DATA_LINE = re.compile(r"^(dataset_path|output_type|doc_to_text)\s*:", re.MULTILINE)
_FUNCTION = re.compile(r"!function\b")
# lm-eval renders with plain Jinja, StrictUndefined and trailing newlines kept; the same, in the sandbox.
_JINJA = PromptSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
_JINJA.filters["regex_replace"] = lambda text, pattern, repl, count=0: re.sub(pattern, repl, text, count=count)


def is_lm_eval_task(path: Path) -> bool:
    """Whether the YAML file at ``path`` is an lm-eval task (a top-level ``task:`` and ``dataset_path:``,
    ``output_type:`` or ``doc_to_text:``) rather than an evaltune suite file."""
    try:
        text = read_text(path)
    except SuiteError:
        return False
    return bool(_TASK_LINE.search(text) and _DATA_LINE.search(text))


def load(path: Path, limit: int | None = None) -> SuiteSpec:
    """The suite an lm-eval task file describes: one item per document of its evaluation split."""
    source = str(path)
    config = _read_config(path, source)
    output_type = config.get("output_type", "generate_until")
    if output_type not in OUTPUT_TYPES:
        raise SuiteError(source, f"output_type {output_type!r} is not one evaltune imports; it reads "
                                 f"{' and '.join(OUTPUT_TYPES)}", field="output_type")
    if config.get("num_fewshot") not in (None, 0):
        raise SuiteError(source, "few-shot examples are not imported; set num_fewshot: 0 (or leave it out), or "
                                 "write the examples into description", field="num_fewshot")
    metrics = _metrics(config, output_type, source)
    docs = _documents(config, path, source)[: check_limit(limit, source)]
    if not docs:
        raise SuiteError(source, "the evaluation split has no documents", field="dataset_kwargs")
    task = str(config["task"])
    build = _choice_item if output_type == "multiple_choice" else _generation_item
    items = tuple(build(config, doc, f"{task}-{n}", metrics, source) for n, doc in enumerate(docs))
    scorers = tuple(name for name in metrics.values() if not name.startswith("pass_rate:"))
    return SuiteSpec(name=task, items=items, generation=_generation(config, output_type, source), scorers=scorers,
                     description=f"lm-evaluation-harness task {task} ({output_type}); metrics: "
                                 + ", ".join(f"{theirs} -> {ours}" for theirs, ours in metrics.items()),
                     source=source)


def _read_config(path: Path, source: str) -> dict[str, Any]:
    text = read_text(path, source)
    found = _FUNCTION.search(text)
    if found:
        line = text[: found.start()].count("\n") + 1
        key = text[text.rfind("\n", 0, found.start()) + 1 : found.start()].strip().rstrip(":").strip() or "a value"
        raise SuiteError(f"{source}:{line}", f"{key} is '!function': evaltune runs no Python named by a task file; "
                                             "write it as a Jinja template over the document's columns, or register "
                                             "a scorer (see 'evaltune scorers list')")
    try:
        config = parse_yaml(text, source)
    except FileProblem as problem:
        raise SuiteError(problem.where, problem.problem) from None
    if not isinstance(config, Mapping) or "task" not in config:
        raise SuiteError(source, f"an lm-eval task file is a mapping with a task: name, not {describe(config)}")
    for key in config:
        if key not in READ_KEYS:
            raise SuiteError(source, f"'{key}' is not something evaltune's lm-eval import does; remove it, or run "
                                     "this task with lm-eval itself", field=str(key))
    return dict(config)


def _metrics(config: Mapping[str, Any], output_type: str, source: str) -> dict[str, str]:
    """lm-eval metric name -> our metric (scorer name, or the pass_rate of the exact_match assertions)."""
    known = METRICS[output_type]
    listed = config.get("metric_list") or [{"metric": next(iter(known))}]
    metrics = {}
    for entry in listed:
        name = entry.get("metric") if isinstance(entry, Mapping) else None
        if name not in known:
            raise SuiteError(source, f"metric {name!r} is not one evaltune computes for {output_type}; it has "
                                     f"{', '.join(known)}", field="metric_list")
        extra = sorted(set(entry) - {"metric", "aggregation", "higher_is_better"})
        if extra or entry.get("aggregation", "mean") != "mean":
            raise SuiteError(source, f"metric {name}: {', '.join(extra) or 'aggregation'} changes how lm-eval scores "
                                     "it, and evaltune scores it the plain way; remove it", field="metric_list")
        metrics[name] = known[name]
    return metrics


def _data_files(config: Mapping[str, Any], path: Path, source: str) -> tuple[Any, str]:
    kwargs = config.get("dataset_kwargs") or {}
    files = kwargs.get("data_files") if isinstance(kwargs, Mapping) else None
    if config.get("dataset_path") not in DATA_FORMATS or files is None:
        raise SuiteError(source, f"reads local files only: dataset_path: {' | '.join(DATA_FORMATS)} with "
                                 "dataset_kwargs: {data_files: ...}; for a hub dataset use 'hf:OWNER/NAME'",
                         field="dataset_path")
    extra = sorted(set(kwargs) - {"data_files"})
    if extra:
        raise SuiteError(source, f"dataset_kwargs.{extra[0]} is not imported; remove it", field="dataset_kwargs")

    def located(name: Any) -> str:
        beside, here = path.parent / str(name), Path(str(name))
        for candidate in (beside, here):
            if candidate.is_file():
                return str(candidate.resolve())
        raise SuiteError(source, f"data file {name} not found beside the task file ({beside}) nor in the current "
                                 "folder; fix the path", field="dataset_kwargs.data_files")

    def each(value: Any) -> Any:
        return [located(v) for v in value] if isinstance(value, list) else located(value)

    resolved = {k: each(v) for k, v in files.items()} if isinstance(files, Mapping) else {"train": each(files)}
    split = config.get("test_split") or config.get("validation_split")
    if split not in resolved:
        raise SuiteError(source, f"the evaluation split {split!r} (test_split, else validation_split) is not among "
                                 f"the data_files' splits ({', '.join(resolved)})", field="test_split")
    return resolved, str(split)


def _documents(config: Mapping[str, Any], path: Path, source: str) -> list[dict[str, Any]]:
    import datasets

    files, split = _data_files(config, path, source)
    try:
        return list(datasets.load_dataset(str(config["dataset_path"]), data_files=files, split=split))
    except Exception as error:  # datasets' own errors: a malformed file, mixed column types
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise SuiteError(source, f"the data files cannot be read ({first}); check them",
                         field="dataset_kwargs.data_files") from None


def _render(template: str, doc: Mapping[str, Any], item: str, field: str, source: str) -> str:
    try:
        return _JINJA.from_string(template).render(**doc)
    except (TemplateError, TypeError, ValueError, LookupError) as error:
        message = getattr(error, "message", None) or str(error)
        raise SuiteError(source, f"{message}; the template reads the document's columns: {', '.join(doc)}",
                         item=item, field=field) from None


def _text(config: Mapping[str, Any], doc: Mapping[str, Any], item: str, source: str) -> str:
    """lm-eval's context with no few-shot examples: the description, then doc_to_text."""
    value = config.get("doc_to_text", "")
    text = doc[value] if isinstance(value, str) and value in doc else _render(str(value), doc, item, "doc_to_text",
                                                                               source)
    description = config.get("description")
    return (_render(str(description), doc, item, "description", source) if description else "") + str(text)


def _choices(config: Mapping[str, Any], doc: Mapping[str, Any], item: str, source: str) -> list[str]:
    value = config.get("doc_to_choice")
    if isinstance(value, str) and value in doc:
        choices = doc[value]
    elif isinstance(value, str):
        try:
            choices = ast.literal_eval(_render(value, doc, item, "doc_to_choice", source))
        except (ValueError, SyntaxError):
            raise SuiteError(source, "doc_to_choice must render to a list such as ['yes', 'no']", item=item,
                             field="doc_to_choice") from None
    elif isinstance(value, list):
        choices = [_render(str(c), doc, item, "doc_to_choice", source) for c in value]
    elif isinstance(value, Mapping):
        choices = list(value.values())
    else:
        raise SuiteError(source, "needs doc_to_choice: a column, a template or a list", item=item,
                         field="doc_to_choice")
    if not isinstance(choices, list) or not choices:
        raise SuiteError(source, f"doc_to_choice gave {describe(choices)}, not a list of choices", item=item,
                         field="doc_to_choice")
    return [str(choice) for choice in choices]


def _target(config: Mapping[str, Any], doc: Mapping[str, Any], item: str, source: str, choices: bool) -> Any:
    """lm-eval's doc_to_target: a column's value, an int, or a rendered template (digits -> an index when there are
    choices, '[...]' -> a list)."""
    value = config.get("doc_to_target")
    if isinstance(value, int):
        return value
    if value is None:
        raise SuiteError(source, "needs doc_to_target", field="doc_to_target")
    if isinstance(value, str) and value in doc:
        return doc[value]
    text = _render(str(value), doc, item, "doc_to_target", source)
    if choices and text.isdigit():
        return int(text)
    if len(text) >= 2 and text[0] == "[" and text[-1] == "]":
        return ast.literal_eval(text)
    return text


def _gold(target: Any, choices: list[str], item: str, source: str) -> tuple[int, ...]:
    golds = target if isinstance(target, list) else [target]
    indices = [choices.index(g) if isinstance(g, str) and g in choices else g for g in golds]
    if any(not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < len(choices) for i in indices):
        raise SuiteError(source, f"the target {target!r} is not one of the {len(choices)} choices nor an index into "
                                 "them", item=item, field="doc_to_target")
    return tuple(indices)


def _choice_item(config: Mapping[str, Any], doc: Mapping[str, Any], item_id: str, metrics: dict[str, str],
                 source: str) -> Item:
    choices = _choices(config, doc, item_id, source)
    gold = _gold(_target(config, doc, item_id, source, True), choices, item_id, source)
    delimiter = str(config.get("target_delimiter", " "))
    metadata = {"choice_delimiter": delimiter} if delimiter != " " else {}
    return Item(id=item_id, input=_text(config, doc, item_id, source), choices=tuple(choices), gold=gold,
                metadata=metadata)


def _generation_item(config: Mapping[str, Any], doc: Mapping[str, Any], item_id: str, metrics: dict[str, str],
                     source: str) -> Item:
    target = _target(config, doc, item_id, source, "doc_to_choice" in config)
    if "doc_to_choice" in config:
        target = _choices(config, doc, item_id, source)[int(target)]
    if isinstance(target, list):
        raise SuiteError(source, "several targets per document are not imported for generate_until; give one",
                         item=item_id, field="doc_to_target")
    target = str(target)
    assertions: tuple[Assertion, ...] = ()
    if "exact_match" in metrics:
        try:
            assertions = (assertion_from_dict({"type": "equals", "value": target, "metric": "exact_match"}),)
        except AssertionSpecError as error:
            raise SuiteError(source, error.message, item=item_id, field="doc_to_target") from None
    return Item(id=item_id, input=_text(config, doc, item_id, source), references=(target,), assertions=assertions)


def _generation(config: Mapping[str, Any], output_type: str, source: str) -> GenerationSettings:
    """lm-eval's settings: no chat template; for generate_until its generation_kwargs (defaults: stop at the
    few-shot delimiter, 256 new tokens, greedy)."""
    if output_type == "multiple_choice":
        return GenerationSettings(max_new_tokens=1, chat="never")
    kwargs = dict(config.get("generation_kwargs") or {})
    until = kwargs.pop("until", [config.get("fewshot_delimiter", "\n\n")])
    until = [until] if isinstance(until, str) else list(until)
    tokens = next((kwargs.pop(k) for k in ("max_gen_toks", "max_new_tokens") if k in kwargs), 256)
    temperature = float(kwargs.pop("temperature", 0.0))
    sample = bool(kwargs.pop("do_sample", temperature > 0))
    top_p = float(kwargs.pop("top_p", 1.0))
    if not sample:  # greedy, as lm-eval decodes without do_sample: its sampling settings do nothing
        temperature, top_p = 0.0, 1.0
    if kwargs:
        raise SuiteError(source, f"generation_kwargs.{sorted(kwargs)[0]} is not imported; evaltune reads until, "
                                 "max_gen_toks, do_sample, temperature and top_p", field="generation_kwargs")
    return GenerationSettings(max_new_tokens=int(tokens), temperature=temperature, top_p=top_p,
                              stop=tuple(str(u) for u in until if u), chat="never")
