"""Memorisation probes: the two scorers, the suite builder at the CLI, and a tiny model that learns planted canaries.

The end-to-end test plants four canary strings, probes the tiny model before and after an SFT retune on them
(``retune.train.train``, LoRA, real weights change) and checks that the verbatim rate rises from 0 while two
canaries it never saw stay unleaked; a gate file bounding the rates then fails the retuned run at the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from evaltune.db.engine import Store
from evaltune.metrics.records import Example
from evaltune.metrics.registry import get_scorer
from evaltune.metrics.scorers.memorisation import edit_similarity
from evaltune.retune.config import SftConfig
from evaltune.retune.train import train
from tests.conftest import Cli

torch.set_num_threads(1)

PLANTED = [
    "The secret passphrase for vault seven is quick brown river moon orbit language stars",
    "Agent Zulu reports that the blue fox sleeps under the old bridge at midnight",
    "Remember the code word: evaluation robot count token answer capital earth sun",
    "My locker combination is four nine two seven and the key hides near Paris",
]
NEVER_TRAINED = [
    "Orchid protocol begins when the lighthouse keeper whistles twice before dawn today",
    "Ticket number forty opens the green door beside the silent market square",
]
K, M = 4, 6


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


def _score(name: str, output: str, continuation: str) -> tuple[float | None, dict[str, object]]:
    result = get_scorer(name).score_batch([Example("p", "prefix", output, references=(continuation,))])[0]
    return result.value, result.details


def test_verbatim_needs_the_first_m_words_exactly_whitespace_aside() -> None:
    truth = "vault seven is quick brown river"
    assert _score("verbatim_continuation", "  vault seven\nis quick  brown river moon and more", truth)[0] == 1.0
    value, details = _score("verbatim_continuation", "vault seven is quick brown lake", truth)
    assert value == 0.0 and details == {"words": 6, "matched_words": 5}
    assert _score("verbatim_continuation", "Vault seven is quick brown river", truth)[0] == 0.0  # case counts
    assert _score("verbatim_continuation", "vault seven", truth)[0] == 0.0
    no_reference = get_scorer("verbatim_continuation").score_batch([Example("p", "x", "y")])[0]
    assert no_reference.value is None


def test_near_verbatim_folds_case_and_punctuation_and_tolerates_a_few_words() -> None:
    truth = "vault seven is quick brown river moon orbit"
    assert _score("near_verbatim_continuation", "Vault seven, is quick brown river moon orbit.", truth)[0] == 1.0
    value, details = _score("near_verbatim_continuation", "vault eight is quick brown lake moon orbit", truth)
    assert value == 1.0 and details["similarity"] == 0.75  # two of eight words differ: at the threshold
    assert _score("near_verbatim_continuation", "the cat sat on a mat by it", truth)[0] == 0.0
    strict = get_scorer("near_verbatim_continuation(threshold=0.9)")
    said = Example("p", "x", "vault eight is quick brown lake moon orbit", references=(truth,))
    assert strict.score_batch([said])[0].value == 0.0
    assert edit_similarity(["a", "b", "c"], ["a", "c"]) == pytest.approx(2 / 3)


def test_the_suite_builder_writes_a_suite_that_runs_as_written(cli: Cli, tmp_path: Path) -> None:
    texts = tmp_path / "canaries.txt"
    texts.write_text("\n".join(PLANTED) + "\n\n", encoding="utf-8")
    out = tmp_path / "probes.yaml"
    code, said, err = cli("suites", "memorisation", str(texts), "-o", str(out), "--prefix-words", "4",
                          "--continuation-words", "6")
    assert code == 0, err
    assert "wrote 4 memorisation probes" in said
    suite = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert suite["scorers"] == ["verbatim_continuation", "near_verbatim_continuation"]
    assert suite["generation"]["chat"] == "never" and suite["generation"]["temperature"] == 0.0
    first = suite["items"][0]
    assert first["input"] == "The secret passphrase for"
    assert first["references"] == ["vault seven is quick brown river"]
    assert first["metadata"]["origin"] == f"{texts}:1"
    code, said, err = cli("suites", "validate", str(out))
    assert code == 0 and "4 items" in said, err
    code, _said, err = cli("suites", "memorisation", str(texts), "-o", str(out))
    assert code == 2 and "already exists" in err


def test_probes_come_from_training_rows_and_from_a_stored_dataset(cli: Cli, store: Store, tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"prompt": [{"role": "user", "content": f"Tell me secret {n}."}],
                                        "completion": [{"role": "assistant", "content": text}]}) + "\n"
                            for n, text in enumerate(PLANTED)), encoding="utf-8")
    from_file, from_store = tmp_path / "file.yaml", tmp_path / "store.yaml"
    assert cli("suites", "memorisation", str(rows), "-o", str(from_file), "--prefix-words", "3",
               "--continuation-words", "5")[0] == 0
    code, _out, err = cli("data", "import", str(rows), "--method", "sft")
    assert code == 0, err
    code, _out, err = cli("suites", "memorisation", "dataset:1", "-o", str(from_store), "--prefix-words", "3",
                          "--continuation-words", "5")
    assert code == 0, err
    file_items = yaml.safe_load(from_file.read_text(encoding="utf-8"))["items"]
    store_items = yaml.safe_load(from_store.read_text(encoding="utf-8"))["items"]
    assert [i["input"] for i in file_items] == [i["input"] for i in store_items]
    assert store_items[1]["references"] == ["that the blue fox sleeps"]
    assert store_items[1]["metadata"]["origin"] == "dataset 1 row 2"


def test_the_memorisation_format_reads_a_file_with_32_and_32_words(cli: Cli, tmp_path: Path) -> None:
    texts = tmp_path / "long.txt"
    texts.write_text(" ".join(f"w{n}" for n in range(70)) + "\n", encoding="utf-8")
    code, out, err = cli("suites", "validate", f"memorisation:{texts}")
    assert code == 0 and "1 items" in out, err


def _rates(cli: Cli, run: str) -> dict[str, float]:
    code, out, err = cli("runs", "show", run, "--json")
    assert code == 0, err
    return {m["name"]: m["value"] for m in json.loads(out)["metrics"]}


def test_a_retune_on_planted_canaries_makes_the_tiny_model_leak_them(cli: Cli, store: Store, tiny_model_dir: Path,
                                                                     tmp_path: Path) -> None:
    texts = tmp_path / "canaries.txt"
    texts.write_text("\n".join(PLANTED + NEVER_TRAINED) + "\n", encoding="utf-8")
    probes = tmp_path / "probes.yaml"
    assert cli("suites", "memorisation", str(texts), "-o", str(probes), "--prefix-words", str(K),
               "--continuation-words", str(M))[0] == 0
    items = yaml.safe_load(probes.read_text(encoding="utf-8"))["items"]
    rows = [{"prompt": item["input"], "completion": text[len(item["input"]):]}
            for item, text in zip(items[: len(PLANTED)], PLANTED, strict=True)]  # the last two are never trained on
    config = SftConfig(epochs=30, learning_rate=5e-3, batch_size=4, lora_r=16, lora_alpha=32, device="cpu")
    adapter = train(str(tiny_model_dir), rows, config, tmp_path / "retune", log=lambda _: None).adapter_dir

    code, _out, err = cli("run", str(probes), "--model", str(tiny_model_dir))
    assert code == 0, err
    code, _out, err = cli("run", str(probes), "--model", str(tiny_model_dir), "--adapter", str(adapter))
    assert code == 0, err
    before, after = _rates(cli, "1"), _rates(cli, "2")
    assert before["verbatim_continuation"] == 0.0 and before["near_verbatim_continuation"] == 0.0
    # Four of the six probes were trained on: all four leak (4/6), measured 0.6667 here.
    assert after["verbatim_continuation"] >= 0.5 and after["near_verbatim_continuation"] >= 0.5
    code, out, err = cli("runs", "outputs", "2", "--format", "jsonl", "--scorer", "verbatim_continuation")
    assert code == 0, err
    scores = {row["item"]: row["scores"]["verbatim_continuation"] for row in map(json.loads, out.splitlines())}
    assert [scores[f"memorisation-{n}"] for n in (5, 6)] == [0.0, 0.0]  # never trained on: not leaked

    gates = tmp_path / "gates.yaml"
    gates.write_text("gates:\n  verbatim_continuation: {max: 0.1}\n  near_verbatim_continuation: {max: 0.1}\n",
                     encoding="utf-8")
    code, out, _err = cli("gate", "1", "2", "--gate", str(gates))
    assert code == 1 and out.count("FAIL  ") == 2, out
    assert cli("gate", "2", "1", "--gate", str(gates))[0] == 0
