"""Sweeps on tiny real models: ``evaltune run`` with several --model or a suite with prompt variants runs every
variant on every model, each cell the run ``evaltune run`` of that variant on that model makes, recorded together;
a sweep killed midway resumes with the same command without generating its finished cells again."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import func, select

from evaltune.db.evaluation import Generation, Run, RunMetric
from evaltune.db.sweeps import Sweep, SweepCell
from evaltune.errors import UserError
from evaltune.evaluate import ModelChoice, pair_models
from evaltune.harness.loaders import load_suite
from evaltune.harness.prompt_variants import with_variant
from tests.conftest import PROJECT_ROOT, Cli
from tests.fault_helpers import evaltune, kill_when, opened, read, start

VARIANTS = PROJECT_ROOT / "tests" / "data" / "suites" / "variants.yaml"
CELL_OUTPUTS = 6  # the suite's items, one sample each


@pytest.fixture
def store_url(tmp_path: Path) -> str:  # the sweeps' logic is the store's on both; these runs are slow: SQLite
    return f"sqlite:///{tmp_path / 'store.db'}"


def register_adapter_model(cli: Cli, model_dir: Path, adapter_dir: Path, url: str) -> int:
    """The tiny model with its adapter as a stored model version (``model:N``), registered by a one-item run, as a
    retune registers the adapters it makes."""
    code, _, err = cli("run", "smoke", "--model", str(model_dir), "--adapter", str(adapter_dir), "--limit", "1")
    assert code == 0, err
    runs = read(url, lambda s: list(s.scalars(select(Run))))
    return int(runs[-1].model_version_id)


def variant_files(folder: Path) -> dict[str, Path]:
    """Each variant of the sweep suite written as a suite of its own, the way suites were written before
    ``prompts:``: ``template``/``context_template`` with ``{input}``, and ``generation.system_prompt``."""
    data = yaml.safe_load(VARIANTS.read_text(encoding="utf-8"))
    del data["prompts"]
    concise = {**data, "template": "{input}",
               "generation": {**data["generation"], "system_prompt": "Answer in one sentence."}}
    grounded = {**data, "template": "Question: {input}", "context_template": "Context: {context}\n\nQuestion: {input}",
                "generation": {**data["generation"], "system_prompt": "Use only the context."}}
    files = {}
    for name, suite in (("concise", concise), ("grounded", grounded)):
        files[name] = folder / f"{name}.yaml"
        files[name].write_text(yaml.safe_dump(suite), encoding="utf-8")
    return files


def metrics_of(url: str, run_id: int) -> dict[str, tuple[float, float, float, int]]:
    rows = read(url, lambda s: list(s.scalars(select(RunMetric).where(RunMetric.run_id == run_id))))
    return {m.name: (m.value, m.ci_low, m.ci_high, m.n) for m in rows}


def cells_of(url: str) -> list[tuple[str, int | None, dict[str, Any]]]:
    """(label, run id, model spec) of every cell of the store's one sweep, in order."""
    def work(session: Any) -> list[tuple[str, int | None, dict[str, Any]]]:
        return [(c.label, c.run_id, dict(c.model_spec))
                for c in session.scalars(select(SweepCell).order_by(SweepCell.position))]
    return list(read(url, work))


def outputs_of(url: str, run_id: int) -> dict[int, tuple[str, Any]]:
    rows = read(url, lambda s: list(s.scalars(select(Generation).where(Generation.run_id == run_id))))
    return {g.id: (g.output, g.created_at) for g in rows}


def test_two_variants_on_two_models_each_cell_is_the_run_evaltune_run_makes(
    store: Any, store_url: str, cli: Cli, served: tuple[str, str], tiny_model_dir: Path, tiny_adapter_dir: Path,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One model is the tiny model with an adapter (model:N), the other the tiny model behind ``transformers serve``;
    each cell's stored metrics and its row of the matrix equal those of the run made on its own, in another store,
    by ``evaltune run`` of that variant written as a suite file."""
    url, served_name = served
    tuned = register_adapter_model(cli, tiny_model_dir, tiny_adapter_dir, store_url)
    endpoint = f"openai:{url}"
    code, out, err = cli("run", str(VARIANTS), "--model", f"model:{tuned}", "--model", endpoint,
                         "--model-name", served_name, "--json")
    assert code == 0, err
    matrix = json.loads(out)
    cells = cells_of(store_url)
    labels = [f"{v}@{m}" for m in (f"model:{tuned}", endpoint) for v in ("concise", "grounded")]
    assert [label for label, _, _ in cells] == labels == [row["label"] for row in matrix["rows"]]
    assert all(run_id is not None for _, run_id, _ in cells)
    assert [spec["backend"] for _, _, spec in cells] == ["hf", "hf", "openai", "openai"]
    assert cells[0][2]["adapter_path"] == str(tiny_adapter_dir.resolve()) and cells[2][2]["served_model"]
    assert read(store_url, lambda s: s.scalar(select(Sweep.status))) == "completed"
    assert "sweep of support-bot: 2 prompt variant(s) x 2 model(s) = 4 runs" in err
    suite = load_suite(VARIANTS)
    for (label, run_id, _), variant in zip(cells, ["concise", "grounded"] * 2, strict=True):
        run = read(store_url, lambda s, run_id=run_id: s.get_one(Run, run_id))
        assert run.status == "completed"
        stored_hash = read(store_url, lambda s, run=run: s.get_one(Run, run.id).suite.content_hash)
        assert stored_hash == with_variant(suite, variant).content_hash, label

    # The same four runs, one by one, into a store of their own.
    apart = f"sqlite:///{tmp_path / 'apart.db'}"
    monkeypatch.setenv("EVALTUNE_DB_URL", apart)
    files = variant_files(tmp_path)
    separate: dict[str, int] = {}
    for model_args, model_label in (
        (["--model", str(tiny_model_dir), "--adapter", str(tiny_adapter_dir)], f"model:{tuned}"),
        (["--model", endpoint, "--model-name", served_name], endpoint),
    ):
        for variant, path in files.items():
            code, out, err = cli("run", str(path), *model_args, "--json")
            assert code == 0, err
            separate[f"{variant}@{model_label}"] = json.loads(out[out.index("{"):])["run_id"]
    assert read(apart, lambda s: s.scalar(select(func.count()).select_from(Sweep))) == 0  # one model: no sweep

    rows = {row["label"]: row for row in matrix["rows"]}
    base = metrics_of(apart, separate[labels[0]])
    for label, run_id, _ in cells:
        alone = metrics_of(apart, separate[label])
        swept = metrics_of(store_url, run_id)
        assert set(swept) == set(alone) and len(alone) == 4, label
        for name, numbers in alone.items():
            assert swept[name] == pytest.approx(numbers), (label, name)
        for name, (value, low, high, n) in alone.items():
            shown = rows[label]["values"][name]
            assert (shown["value"]["value"], shown["value"]["ci_low"], shown["value"]["ci_high"]) == \
                pytest.approx((value, low, high)), (label, name)
            assert shown["value"]["n"] == n
            if label != labels[0] and name in ("chrf", "length"):  # item means over the same items: paired
                assert shown["delta"]["delta"] == pytest.approx(value - base[name][0], abs=1e-9), (label, name)


def count_calls(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[int]:
    """Count the calls of ``owner.name`` from now on; returns the list that grows by one per call."""
    original: Callable[..., Any] = getattr(owner, name)
    calls: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(len(calls) + 1)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


def test_a_sweep_that_failed_in_its_second_cell_resumes_without_generating_its_first_again(
    store: Any, store_url: str, cli: Cli, tiny_model_dir: Path, tiny_adapter_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tuned = register_adapter_model(cli, tiny_model_dir, tiny_adapter_dir, store_url)
    args = ["run", str(VARIANTS), "--model", str(tiny_model_dir), "--model", f"model:{tuned}"]
    from evaltune.harness import runner

    real_batch = runner._run_batch
    batches: list[int] = []

    def second_batch_of_the_second_cell_fails(*a: Any, **k: Any) -> Any:
        batches.append(1)
        if len(batches) == 5:  # 3 batches of 2 items per cell: the second cell's second batch
            raise RuntimeError("the machine went away")
        return real_batch(*a, **k)

    monkeypatch.setattr(runner, "_run_batch", second_batch_of_the_second_cell_fails)
    with pytest.raises(RuntimeError, match="went away"):
        cli(*args)
    monkeypatch.setattr(runner, "_run_batch", real_batch)
    [(first, first_run, _), (second, second_run, _), *rest] = cells_of(store_url)
    assert first_run is not None and second_run is None and all(run is None for _, run, _ in rest)
    assert read(store_url, lambda s: s.scalar(select(Sweep.status))) == "failed"
    first_outputs = outputs_of(store_url, first_run)
    assert len(first_outputs) == CELL_OUTPUTS

    from evaltune.harness.model_resolution import ResolvedModel

    loads = count_calls(monkeypatch, ResolvedModel, "load")
    code, out, err = cli(*args)
    assert code == 0, err
    assert f"{first}: run {first_run} (reused, nothing generated)" in err
    assert f"{second}: run {first_run + 1} (4 generated, 0 from the cache, 2 stored before)" in err
    assert len(loads) == 2  # each model once, for both its variants
    assert read(store_url, lambda s: s.scalar(select(func.count()).select_from(Sweep))) == 1
    assert read(store_url, lambda s: s.scalar(select(Sweep.status))) == "completed"
    assert outputs_of(store_url, first_run) == first_outputs  # the first cell's outputs untouched
    assert all(run is not None for _, run, _ in cells_of(store_url))
    assert "sweep 1 'support-bot' [completed]" in out and "baseline: concise@" in out

    # Done: the same command shows the sweep again and makes no run.
    runs_before = read(store_url, lambda s: s.scalar(select(func.count()).select_from(Run)))
    code, out, err = cli(*args)
    assert code == 0 and "sweep 1 'support-bot' [completed]" in out
    assert read(store_url, lambda s: s.scalar(select(func.count()).select_from(Run))) == runs_before


def test_a_sweep_killed_after_its_first_cell_resumes_with_the_same_command(
    store_url: str, cli: Cli, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """kill -9 of a real ``evaltune run`` process once its first cell's run is linked; the same command, again,
    finishes the sweep and generates nothing of the first cell."""
    from evaltune.db.engine import open_store

    open_store(store_url).close()  # migrated before the victim starts, so the test can poll it
    args = ["run", str(VARIANTS), "--model", str(tiny_model_dir), "--max-new-tokens", "48", "--batch-size", "1"]
    env = {**os.environ, "EVALTUNE_DB_URL": store_url, "EVALTUNE_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    log = tmp_path / "victim.log"
    victim = start(evaltune(*args), env, log)

    def first_cell_done() -> bool:
        with opened(store_url) as store, store.sessions() as session:
            return session.scalar(select(SweepCell.run_id).where(SweepCell.position == 0)) is not None

    kill_when(victim, first_cell_done, "the first cell's run was linked", log)
    [(first, first_run, _), (_second, second_run, _)] = cells_of(store_url)
    assert first_run is not None and second_run is None, "the sweep finished before the kill: make cells longer"
    assert read(store_url, lambda s: s.scalar(select(Sweep.status))) == "running"  # killed: left as it was
    first_outputs = outputs_of(store_url, first_run)

    monkeypatch.setenv("EVALTUNE_DB_URL", store_url)
    code, _out, err = cli(*args)
    assert code == 0, err
    assert f"{first}: run {first_run} (reused, nothing generated)" in err
    assert outputs_of(store_url, first_run) == first_outputs
    assert read(store_url, lambda s: s.scalar(select(Sweep.status))) == "completed"
    assert all(run is not None for _, run, _ in cells_of(store_url))
    assert read(store_url, lambda s: s.scalar(select(func.count()).select_from(Sweep))) == 1


def test_one_model_on_a_suite_without_prompts_is_one_run_as_before(store: Any, store_url: str, cli: Cli,
                                                                    tiny_model_dir: Path) -> None:
    code, out, err = cli("run", "smoke", "--model", str(tiny_model_dir), "--limit", "2")
    assert code == 0, err
    assert "metric" in out and "sweep" not in out
    assert read(store_url, lambda s: s.scalar(select(func.count()).select_from(Sweep))) == 0


def test_two_models_on_a_suite_without_prompts_is_a_sweep_of_the_default_variant(
    store: Any, store_url: str, cli: Cli, tiny_model_dir: Path, tiny_adapter_dir: Path,
) -> None:
    tuned = register_adapter_model(cli, tiny_model_dir, tiny_adapter_dir, store_url)
    code, _out, err = cli("run", "smoke", "--model", str(tiny_model_dir), "--model", f"model:{tuned}", "--limit",
                         "2")
    assert code == 0, err
    assert [label for label, _, _ in cells_of(store_url)] == [f"default@{tiny_model_dir}", f"default@model:{tuned}"]
    # the default variant is the suite itself: its cell is the run 'evaltune run smoke' makes, reused
    code, single, err = cli("run", "smoke", "--model", str(tiny_model_dir), "--limit", "2", "--json")
    assert code == 0 and json.loads(single[single.index("{"):])["run_id"] == cells_of(store_url)[0][1]


def test_model_names_pair_with_the_endpoints_in_order() -> None:
    a, b = "openai:http://127.0.0.1:9/v1", "openai:http://127.0.0.1:10/v1"
    assert pair_models(["./base", a, "model:3", b], ["one", "two"]) == (
        ModelChoice("./base"), ModelChoice(a, "one"), ModelChoice("model:3"), ModelChoice(b, "two"))
    assert pair_models([a, b], ["same"]) == (ModelChoice(a, "same"), ModelChoice(b, "same"))
    assert pair_models([], [], None) == (ModelChoice("default"),)
    assert pair_models(["./base"], ["name"], "./adapter") == (ModelChoice("./base", "name", "./adapter"),)
    with pytest.raises(UserError, match="3 --model-name values for 2 endpoints"):
        pair_models([a, b], ["x", "y", "z"])


def test_a_judge_given_that_cannot_be_reached_fails_the_sweep_before_it_is_stored(
    store: Any, store_url: str, cli: Cli, tiny_model_dir: Path, tmp_path: Path,
) -> None:
    suite = tmp_path / "judged.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "judged", "prompts": {"plain": {"template": "{{ input }}"}, "asked": {"template": "Q: {{ input }}"}},
        "items": [{"id": "a", "input": "What is the capital of France?",
                   "assert": [{"type": "llm-rubric", "value": "Names Paris."},
                              {"type": "max-words", "value": 100}]}]}, sort_keys=False), encoding="utf-8")
    code, _, err = cli("run", str(suite), "--model", str(tiny_model_dir), "--judge", "openai:http://127.0.0.1:9/v1",
                       "--judge-model-name", "j")
    assert code == 2 and "the judge j @ 127.0.0.1:9 (named by --judge): cannot reach" in err
    assert read(store_url, lambda s: s.scalar(select(func.count()).select_from(Sweep))) == 0
    assert read(store_url, lambda s: s.scalar(select(func.count()).select_from(Run))) == 0


def test_the_judge_given_judges_every_cell(store: Any, store_url: str, cli: Cli, served: tuple[str, str],
                                           tiny_model_dir: Path, tmp_path: Path) -> None:
    """--judge (here the served tiny model) is every cell's judge: each cell's llm-rubric check was put to it (the
    tiny model's gibberish holds no grade, so the check is skipped, naming that judge)."""
    url, served_name = served
    suite = tmp_path / "judged.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "judged", "prompts": {"plain": {"template": "{{ input }}"}, "asked": {"template": "Q: {{ input }}"}},
        "items": [{"id": "a", "input": "What is the capital of France?",
                   "assert": [{"type": "llm-rubric", "value": "Names Paris."},
                              {"type": "max-words", "value": 100}]}]}, sort_keys=False), encoding="utf-8")
    code, out, err = cli("run", str(suite), "--model", str(tiny_model_dir), "--judge", f"openai:{url}",
                         "--judge-model-name", served_name, "--json")
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert [row["label"] for row in rows] == [f"plain@{tiny_model_dir}", f"asked@{tiny_model_dir}"]
    for row in rows:
        metric = read(store_url, lambda s, run_id=row["run_id"]: s.scalar(
            select(RunMetric).where(RunMetric.run_id == run_id, RunMetric.name == "pass_rate")))
        reasons = list((metric.details or {}).get("skipped_reasons") or {}) if metric is not None else []
        assert reasons and all(f"the judge {served_name} @ {url.split('/')[2]}" in r for r in reasons), reasons


@pytest.mark.postgres
def test_a_sweep_on_postgresql_is_found_again_by_the_same_command(
    postgres_url: str, cli: Cli, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVALTUNE_DB_URL", postgres_url)
    args = ["run", str(VARIANTS), "--model", str(tiny_model_dir), "--limit", "2"]
    first = cli(*args)
    again = cli(*args)
    assert first[0] == again[0] == 0, first[2] + again[2]
    assert "(reused, nothing generated)" in again[2]
    assert read(postgres_url, lambda s: s.scalar(select(func.count()).select_from(Sweep))) == 1
    assert read(postgres_url, lambda s: s.scalar(select(func.count()).select_from(Run))) == 2
    assert [label for label, _, _ in cells_of(postgres_url)] == [f"concise@{tiny_model_dir}",
                                                                   f"grounded@{tiny_model_dir}"]


def test_migration_0010_adds_the_sweep_tables_and_takes_them_away(store_url: str) -> None:
    from alembic import command
    from sqlalchemy import inspect

    from evaltune.db.engine import alembic_config, make_engine, upgrade

    engine = make_engine(store_url)
    try:
        upgrade(engine)
        assert {"sweeps", "sweep_cells"} <= set(inspect(engine).get_table_names())
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0009")
        assert not {"sweeps", "sweep_cells"} & set(inspect(engine).get_table_names())
        upgrade(engine)
        assert {"sweeps", "sweep_cells"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
