"""Readers of human-labelled hallucination data for ``bench/validate_hallucination.py``, and its split.

Every reader returns ``LabelledOutput`` rows: one output (a response, a summary, an answer), the source it must
be faithful to (the knowledge, the article, the reference answer) and a human label (1 = hallucinated). The
public data sets are read from the folders their fetchers wrote (``<data>/<name>/raw/``, each with SOURCE.md and
FORMAT.md); none of it is copied into the repository. The project's own set (tests/data) is read too, but it was
written knowing the heuristics, so the bench never counts it as public data.

The split: each source passage goes wholly to "calibration" or to "figures" by a hash of its text, so no
output's passage is seen by ``--fit`` when its figures are measured, and the split is the same on every machine.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OWN_SET = ROOT / "tests" / "data" / "hallucination_labelled.jsonl"
OWN_NAME = "evaltune_own"
CALIBRATION, FIGURES = "calibration", "figures"


@dataclass(frozen=True)
class LabelledOutput:
    """One human-labelled output: the text checked, what it must be faithful to, and whether it hallucinates."""

    dataset: str
    item_id: str
    source: str
    output: str
    label: int  # 1 = hallucinated (unfaithful to the source), 0 = faithful
    prompt: str = ""
    mode: str = "context"  # "reference": the source is a reference answer, not a passage

    @property
    def part(self) -> str:
        return part_of(self.source)


def part_of(passage: str) -> str:
    """"calibration" or "figures" for every output of this passage: the parity of a hash of its text."""
    digest = hashlib.sha256(" ".join(passage.split()).encode("utf-8")).digest()
    return CALIBRATION if digest[0] % 2 == 0 else FIGURES


# --- the project's own set ---


def read_own(path: Path = OWN_SET) -> list[LabelledOutput]:
    """tests/data/hallucination_labelled.jsonl: passage, question, output, label (written for this project)."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [LabelledOutput(OWN_NAME, r["id"], r["passage"], r["output"], int(r["label"]), r["question"])
            for r in rows]


# --- TruthfulQA (Lin et al. 2022, Apache-2.0): answers checked against the Best Answer ---


def read_truthfulqa(folder: Path) -> list[LabelledOutput]:
    """TruthfulQA.csv: each human-written correct (0) and incorrect (1) answer against the question's Best Answer.

    The Best Answer itself is left out of the outputs: an answer compared with itself says nothing.
    """
    rows = []
    with (folder / "TruthfulQA.csv").open(encoding="utf-8", newline="") as handle:
        for number, record in enumerate(csv.DictReader(handle)):
            best = record["Best Answer"].strip()
            answers = [(a, 0) for a in _answers(record["Correct Answers"])]
            answers += [(a, 1) for a in _answers(record["Incorrect Answers"])]
            for k, (answer, label) in enumerate(answers):
                if answer.rstrip(".") == best.rstrip("."):
                    continue
                rows.append(LabelledOutput("truthfulqa", f"tqa{number}-{k}", best, answer, label,
                                           record["Question"], mode="reference"))
    return rows


def _answers(cell: str) -> list[str]:
    return [a.strip() for a in cell.split(";") if a.strip()]


# --- Q² (Honovich et al. 2021): knowledge-grounded dialogue responses, labelled consistent or not ---


def read_q2(folder: Path) -> list[LabelledOutput]:
    """``*_consistent.csv`` (0) and ``*_inconsistent.csv`` (1), columns
    ``,episode_idx,round,topic,message,response,knowledge,gold``: the response checked against the knowledge."""
    rows = []
    for path in sorted(folder.glob("*consistent.csv")):
        label = 1 if path.stem.endswith("_inconsistent") else 0
        with path.open(encoding="utf-8", newline="") as handle:
            for record in csv.DictReader(handle):
                rows.append(LabelledOutput("q2", f"{path.stem}-{record['']}", record["knowledge"],
                                           record["response"], label, record["message"]))
    return rows


# --- BEGIN (Dziri et al. 2022): dialogue responses labelled for attribution to their knowledge ---

BEGIN_LABELS = {"Fully attributable": 0, "Not fully attributable": 1}


def read_begin(folder: Path) -> list[LabelledOutput]:
    """``begin_*.tsv``, columns model_name, data_source, knowledge, message, response, begin_label.

    "Generic" responses ("that sounds fun") are left out: they claim nothing to check against the knowledge.
    """
    rows = []
    for path in sorted(folder.glob("begin_*.tsv")):
        with path.open(encoding="utf-8", newline="") as handle:
            for number, record in enumerate(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)):
                label = BEGIN_LABELS.get(record["begin_label"].strip())
                if label is not None:
                    rows.append(LabelledOutput("begin", f"{path.stem}-{number}", record["knowledge"],
                                               record["response"], label, record["message"]))
    return rows


# --- the SummaC benchmark's JSON files (Laban et al. 2022): a news article, a summary sentence, a label ---


def read_summac(folder: Path, name: str) -> list[LabelledOutput]:
    """``<name>.json``: {key: {document, claim, label, ...}} where label 1 means consistent. The fetched copies
    are the file's first pages, cut after a complete record, so the object's closing brace may be missing.
    The claims are tokenised news summaries with ``\\'`` artefacts, read as plain apostrophes."""
    text = (folder / f"{name}.json").read_text(encoding="utf-8")
    try:
        records = json.loads(text)
    except json.JSONDecodeError:
        records = json.loads(text.rstrip().rstrip(",") + "\n}")
    return [LabelledOutput(name, key, r["document"], r["claim"].replace("\\'", "'"), 1 - int(r["label"]))
            for key, r in records.items()]


# --- the registry of public data sets: name -> (reader, where it lives under --data) ---

Reader = Callable[[Path], list[LabelledOutput]]


@dataclass(frozen=True)
class PublicSet:
    name: str
    reader: Reader
    citation: str


PUBLIC_SETS: dict[str, PublicSet] = {}


def public_set(name: str, citation: str) -> Callable[[Reader], Reader]:
    def register(reader: Reader) -> Reader:
        PUBLIC_SETS[name] = PublicSet(name, reader, citation)
        return reader
    return register


public_set("q2", "Honovich et al. 2021, Q²: Evaluating factual consistency in knowledge-grounded dialogues (EMNLP)")(
    read_q2)
public_set("begin", "Dziri et al. 2022, Evaluating attribution in dialogue systems: the BEGIN benchmark (TACL)")(
    read_begin)
public_set("xsumfaith", "Maynez et al. 2020, On faithfulness and factuality in abstractive summarization (ACL), "
           "as packaged by SummaC (Laban et al. 2022)")(lambda folder: read_summac(folder, "xsumfaith"))
public_set("factcc", "Kryscinski et al. 2020, Evaluating the factual consistency of abstractive text summarization "
           "(EMNLP), as packaged by SummaC (Laban et al. 2022)")(lambda folder: read_summac(folder, "factcc"))
public_set("truthfulqa", "Lin, Hilton, Evans 2022, TruthfulQA (ACL); Apache-2.0")(read_truthfulqa)


def find_public(data: Path | None, truthfulqa: Path | None) -> Iterator[tuple[str, Path | None, str]]:
    """(name, folder or None, why it is absent) for every public set, in a fixed order."""
    for name in PUBLIC_SETS:
        if name == "truthfulqa":
            folder = truthfulqa if truthfulqa is not None else (data / name / "raw" if data else None)
        else:
            folder = data / name / "raw" if data else None
        if folder is None:
            yield name, None, "no --data folder given (or EVALTUNE_HALLUCINATION_DATA)"
        elif not folder.is_dir() or not any(folder.iterdir()):
            yield name, None, f"{folder} is absent or empty"
        else:
            yield name, folder, ""
