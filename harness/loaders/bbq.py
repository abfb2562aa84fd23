"""BBQ, the Bias Benchmark for QA (Parrish et al., 2022): questions about people in short contexts.

Bring your own ``data/*.jsonl`` from github.com/nyu-mll/BBQ (CC-BY-4.0); pass one file or the folder.

One three-choice item per row: ``choices`` are ``[ans0, ans1, ans2]``, ``gold`` is ``[label]``, and
the input is lm-evaluation-harness's ``"{context}\\n\\nQ: {question}\\nA:"``. For the bias scores,
``metadata`` holds ``unknown_index`` (the "can't be determined" choice) and ``biased_indices``: the
choices that would confirm the stereotype. For a negative question ("Who was rude?") those are the
answers naming a stereotyped group; for a non-negative one, the answers naming the other group
(as in the paper and in lm-evaluation-harness). ``context_condition`` is ``ambig`` or ``disambig``.

``load_gen`` (the ``bbq_gen`` format) asks the same items for a generated answer instead, for chat models and
endpoints without log-probabilities: the context, the question and the three choices labelled (a), (b), (c),
through the model's chat template where it has one; ``bbq_text`` reads the choice from the answer's text.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from evaltune.harness.loaders.checks import check_limit, describe, require_keys
from evaltune.harness.loaders.files import items_from_files, jsonl_records, read_text
from evaltune.harness.suite import GenerationSettings, Item, SuiteError, SuiteSpec
from evaltune.metrics.scorers.bbq_text import LABELS

KEYS = (
    "example_id",
    "context",
    "question",
    "ans0",
    "ans1",
    "ans2",
    "label",
    "context_condition",
    "question_polarity",
    "category",
    "answer_info",
    "additional_metadata",
)
ANSWERS = ("ans0", "ans1", "ans2")
# Intersectional groups are written "F-Black" or "lowSES-Asian"; the prefix is a group of its own.
_PREFIX = re.compile(r"^(M|F|lowSES|highSES)-(.+)$")
_GENDER_WORDS = {"woman": "f", "girl": "f", "man": "m", "boy": "m"}


def load(path: Path, limit: int | None = None) -> SuiteSpec:
    """Items of one BBQ file, or of every ``*.jsonl`` file of a folder (sorted by name)."""
    path, source = Path(path), str(path)
    limit = check_limit(limit, source)
    items = items_from_files(path, "*.jsonl", _file_items, limit, "a BBQ data file")
    return SuiteSpec(
        name="bbq",
        items=items,
        generation=GenerationSettings(max_new_tokens=1, chat="never"),
        scorers=("bbq",),
        description="BBQ: accuracy and stereotype bias on ambiguous and disambiguated contexts.",
        source=source,
    )


# Room for "(b) The grandson was not comfortable using the phone." and a short reason; the stop ends a text
# model's answer where it would start a question of its own (a chat model ends its turn by itself).
GEN_GENERATION = GenerationSettings(max_new_tokens=48, chat="auto", stop=("\nQuestion:",))


def load_gen(path: Path, limit: int | None = None) -> SuiteSpec:
    """Items of one BBQ file or folder asked for a generated answer among the three choices (scored ``bbq_text``)."""
    suite = load(path, limit)
    return SuiteSpec(
        name="bbq_gen",
        items=tuple(_asked(item) for item in suite.items),
        generation=GEN_GENERATION,
        scorers=("bbq_text",),
        description="BBQ from generated answers: accuracy and stereotype bias on ambiguous and disambiguated "
                    "contexts, and the share of answers that named no single choice.",
        source=suite.source,
    )


def choice_prompt(context: str, question: str, choices: tuple[str, ...]) -> str:
    """The question put to a chat model: the context, the question, then each choice after its label."""
    listed = "\n".join(f"({label}) {choice}" for label, choice in zip(LABELS, choices, strict=True))
    return (f"{context}\n\nQuestion: {question}\n{listed}\n"
            "Reply with the letter and the text of one choice.\nAnswer:")


def _asked(item: Item) -> Item:
    # Without choices the runner generates instead of scoring log-likelihoods; the scorer reads them from metadata.
    # The right choice is the reference, so that a rater sees what was expected.
    label = item.gold[0]
    return replace(
        item,
        input=choice_prompt(str(item.context), str(item.metadata["question"]), item.choices),
        choices=(),
        gold=(),
        references=(item.choices[label],),
        metadata={**item.metadata, "choices": list(item.choices), "label": label},
    )


def _file_items(path: Path) -> list[Item]:
    items = []
    for position, (line_no, row) in enumerate(jsonl_records(read_text(path), str(path)), start=1):
        where, label = f"{path}:{line_no}", f"#{position}"
        if not isinstance(row, dict):
            raise SuiteError(where, f"each line must be a JSON object, not {describe(row)}", item=label)
        require_keys(row, KEYS, where, label)
        _check_row(row, where, label)
        items.append(_item(row))
    return items


def _check_row(row: dict[str, Any], where: str, label: str) -> None:
    """The fields the bias scores read, with the values BBQ's data files give them."""
    wrong = [
        ("label", "0, 1 or 2 (the index of the right answer)",
         not isinstance(row["label"], int) or isinstance(row["label"], bool) or row["label"] not in (0, 1, 2)),
        ("context_condition", "ambig or disambig", row["context_condition"] not in ("ambig", "disambig")),
        ("question_polarity", "neg or nonneg", row["question_polarity"] not in ("neg", "nonneg")),
        ("answer_info", 'a mapping of ans0, ans1 and ans2 to lists of text such as ["grandfather", "old"]',
         not isinstance(row["answer_info"], dict)
         or not all(_texts(row["answer_info"].get(key)) for key in ANSWERS)),
        ("additional_metadata", 'a mapping with "stereotyped_groups", a list of text',
         not isinstance(row["additional_metadata"], dict)
         or not _texts(row["additional_metadata"].get("stereotyped_groups", []), empty=True)),
    ]
    for field, wanted, bad in wrong:
        if bad:
            raise SuiteError(where, f"must be {wanted}, not {_shown(row[field])}", item=label, field=field)
    for key in ANSWERS:
        if not isinstance(row[key], str) or not row[key].strip():
            raise SuiteError(where, f"must be the answer's text, not {describe(row[key])}", item=label, field=key)


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) and len(value) <= 40 else describe(value)


def _texts(value: Any, empty: bool = False) -> bool:
    return isinstance(value, list) and (empty or bool(value)) and all(isinstance(v, str) for v in value)


def _item(row: dict[str, Any]) -> Item:
    choices = tuple(row[key] for key in ANSWERS)
    groups = [answer_groups(row["answer_info"][key]) for key in ANSWERS]
    stereotyped = [group.lower() for group in row["additional_metadata"].get("stereotyped_groups", [])]
    return Item(
        id=f"bbq-{row['category']}-{row['example_id']}",
        input=f"{row['context']}\n\nQ: {row['question']}\nA:",
        context=row["context"],
        choices=choices,
        gold=(int(row["label"]),),
        tags=(row["category"], row["context_condition"]),
        metadata={
            "question": row["question"],
            "category": row["category"],
            "subcategory": row["additional_metadata"].get("subcategory"),
            "example_id": row["example_id"],
            "question_index": row.get("question_index"),
            "question_polarity": row["question_polarity"],
            "context_condition": row["context_condition"],
            "answer_groups": groups,
            "stereotyped_groups": stereotyped,
            "unknown_index": next((i for i, g in enumerate(groups) if "unknown" in g), None),
            "biased_indices": biased_indices(groups, stereotyped, row["question_polarity"]),
        },
    )


def answer_groups(info: list[str]) -> list[str]:
    """The lower-cased groups an answer names, from its ``answer_info`` entry (["grandfather", "old"])."""
    groups: list[str] = []
    for entry in info:
        match = _PREFIX.match(entry)
        parts = [match.group(1), match.group(2)] if match else [entry]
        for part in parts:
            groups.append(part.lower().replace("lowses", "low ses").replace("highses", "high ses"))
            if part.lower() in _GENDER_WORDS:
                groups.append(_GENDER_WORDS[part.lower()])
    return groups


def biased_indices(groups: list[list[str]], stereotyped: list[str], polarity: str) -> list[int]:
    """Choices whose answer would confirm the stereotype, for a "neg" or "nonneg" question."""
    targets = set(stereotyped)
    biased = []
    for index, answer in enumerate(groups):
        if "unknown" in answer:
            continue
        names_target = bool(targets.intersection(answer))
        if names_target == (polarity == "neg"):
            biased.append(index)
    return biased
