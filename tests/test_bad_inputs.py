"""Bad input, end to end: every broken file or argument gives ONE line on stderr that names the file and the
field (or line, or item) and says the fix, exit code 2, and leaves the store exactly as it was.

The corpus is ``tests/bad_inputs/`` (small committed files); a few inputs are made at test time (a 50 MB item,
an adapter made for another model). Each case runs the real command line (``evaltune.cli.main``) in-process
against a store that already holds completed runs, ratings, a dataset and a retune job, and compares a
snapshot of every table (row count and a hash of the rows) before and after.

The cases themselves are in ``tests/bad_input_cases.py``.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from evaltune.cli import cli
from evaltune.db.engine import open_store
from evaltune.errors import click_error_line
from evaltune.retune.datasets import build_dataset
from evaltune.retune.strategies import StrategyParams
from tests import bad_input_arguments, bad_input_cases, bad_input_kit
from tests.bad_input_cases import BAD, CASES, STORE_WRITERS, Case
from tests.conftest import invoke_main
from tests.fixtures.report_seed import seed_runs


@pytest.fixture(scope="module")
def seeded_sqlite(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite store with two completed runs of one suite and one of another, ratings, a dataset and a job."""
    url = f"sqlite:///{tmp_path_factory.mktemp('bad_inputs_store') / 'store.db'}"
    _seed(url)
    return url


def _seed(url: str) -> None:
    """``seed_runs``, whose dataset 1 has no rows, and two datasets built from its ratings: 2, three A/B pairs
    (campaign 2), and 3, three KTO rows (campaign 1's Likert scores): too few to retune without --force."""
    store = open_store(url)
    with store.session_scope() as session:
        seed_runs(session, 40, ratings=True)
        build_dataset(session, 2, "pairwise", StrategyParams(holdout=0.0))
        build_dataset(session, 1, "kto", StrategyParams(holdout=0.0))
    store.close()


@pytest.fixture(scope="module")
def other_adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter for a Llama of hidden size 32 (the tiny model has 64): the wrong base for ``{model}``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.fixtures.tiny_model import build_tiny_adapter

    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=128, max_position_embeddings=64)
    torch.manual_seed(0)
    model_dir = tmp_path_factory.mktemp("other_model")
    LlamaForCausalLM(config).save_pretrained(model_dir)
    return build_tiny_adapter(model_dir, tmp_path_factory.mktemp("other_adapter"))


def snapshot(url: str) -> dict[str, tuple[int, str]]:
    """Every table's row count and a hash of its rows (in a fixed order)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            tables = inspect(conn).get_table_names()
            state = {}
            for table in tables:  # names read from the database itself
                rows = sorted(repr(tuple(row)) for row in conn.execute(text(f'SELECT * FROM "{table}"')))
                state[table] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
            return state
    finally:
        engine.dispose()



def _fill(template: str, places: dict[str, str]) -> str:
    for key, value in places.items():
        template = template.replace("{" + key + "}", value)
    return template


def _places(case: Case, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, str]:
    places = {"bad": str(BAD), "tmp": str(tmp_path)}
    fixtures = {"model": "tiny_model_dir", "adapter": "tiny_adapter_dir", "other_adapter": "other_adapter"}
    for key, fixture in fixtures.items():
        if "{" + key + "}" in case.args:
            places[key] = str(request.getfixturevalue(fixture))
    return places


def check_case(case: Case, url: str, tmp_path: Path, request: pytest.FixtureRequest,
               monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Run the case's command against the store at ``url``; assert exit 2, one named line, nothing changed."""
    places = _places(case, tmp_path, request)
    if case.make:
        case.make(tmp_path)
    capsys.readouterr()  # what building the fixtures printed
    monkeypatch.setenv("EVALTUNE_DB_URL", url)
    for key, value in case.env:
        monkeypatch.setenv(key, _fill(value, places))
    before = snapshot(url)
    code, _out, err = invoke_main(shlex.split(_fill(case.args, places)), monkeypatch, capsys)
    assert "Traceback" not in err, err
    assert code == 2, f"exit code {code}; stderr: {err}"
    assert snapshot(url) == before, "the store changed"
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), f"not one error line: {err!r}"
    for word in case.words:
        assert _fill(word, places) in lines[0], f"{word!r} not in {lines[0]!r}"
    for word in case.absent:
        assert word not in err


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gives_one_line_exit_2_and_changes_nothing(
    case: Case, seeded_sqlite: str, tmp_path: Path, request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    check_case(case, seeded_sqlite, tmp_path, request, monkeypatch, capsys)


@pytest.mark.parametrize("case", [c for c in CASES if c.id in STORE_WRITERS])
def test_bad_input_changes_nothing_on_either_store(
    case: Case, store_url: str, tmp_path: Path, request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    _seed(store_url)
    check_case(case, store_url, tmp_path, request, monkeypatch, capsys)


def test_the_corpus_is_large_and_every_file_in_it_is_used() -> None:
    assert len(CASES) >= 40
    modules = (bad_input_cases, bad_input_arguments, bad_input_kit)
    source = "".join(Path(m.__file__ or "").read_text(encoding="utf-8") for m in modules) + \
        Path(__file__).read_text(encoding="utf-8")
    unused = [path for path in BAD.rglob("*") if path.is_file()
              and path.name not in source and path.parent.relative_to(BAD).as_posix() not in source]
    assert unused == []


def test_odd_but_valid_files_are_accepted(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    """A byte-order mark and Windows line endings are not errors."""
    args = ["suites", "validate", str(BAD / "suites" / "bom_crlf_valid.yaml")]
    code, out, err = invoke_main(args, monkeypatch, capsys)
    assert code == 0 and "ok: bom-is-fine, 1 items" in out, err


def test_a_mistyped_gate_metric_fails_the_gate_and_names_the_metric_it_meant(
    seeded_sqlite: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rule whose metric is not in the report fails (exit 1, as the README promises), never passes unchecked;
    a near miss says which metric it probably meant."""
    monkeypatch.setenv("EVALTUNE_DB_URL", seeded_sqlite)
    before = snapshot(seeded_sqlite)
    args = ["gate", "1", "2", "--gate", str(BAD / "gates" / "typo_metric.yaml")]
    code, out, _ = invoke_main(args, monkeypatch, capsys)
    assert code == 1
    assert "exact_matc: not in the report" in out and "(did you mean 'exact_match'?)" in out
    assert snapshot(seeded_sqlite) == before


def test_an_imported_export_round_trips(seeded_sqlite: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """``data import`` reads back what ``data export`` writes, conversational rows included."""
    monkeypatch.setenv("EVALTUNE_DB_URL", seeded_sqlite)
    rows = [{"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Lyon."},
            {"prompt": [{"role": "user", "content": "Capital of Spain?"}],
             "chosen": [{"role": "assistant", "content": "Madrid."}],
             "rejected": [{"role": "assistant", "content": "Seville."}]}]
    first = tmp_path / "rows.jsonl"
    first.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    code, out, err = invoke_main(["data", "import", str(first)], monkeypatch, capsys)
    assert code == 0, err
    dataset_id = out.split()[1]
    assert out.startswith(f"dataset {dataset_id} (dpo): 2 rows")
    again = tmp_path / "again.jsonl"
    code, _, err = invoke_main(["data", "export", dataset_id, "-o", str(again)], monkeypatch, capsys)
    assert code == 0, err
    assert [json.loads(line) for line in again.read_text().splitlines()] == rows


@pytest.mark.parametrize("args", [["run", "smoke", "--limit", "x"], ["rn"], ["run"], ["data", "build"]])
def test_click_errors_read_as_one_line(args: list[str]) -> None:
    """What ``evaltune.errors.show_click_error`` prints for click's own errors (wired in by evaltune/cli.py)."""
    import click

    with pytest.raises(click.ClickException) as caught:
        cli.main(args, prog_name="evaltune", standalone_mode=False)
    line = click_error_line(caught.value)
    assert "\n" not in line and line.startswith("evaltune") and "--help" in line


@pytest.fixture(autouse=True)
def _no_stray_files() -> Iterator[None]:
    """No case may leave files in the corpus (a .partial export, a converted model)."""
    before = sorted(BAD.rglob("*"))
    yield
    assert sorted(BAD.rglob("*")) == before
