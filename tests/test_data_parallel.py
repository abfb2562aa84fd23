"""Data-parallel runs: ``evaltune run`` under ``accelerate launch`` and ``torchrun`` with 2 CPU processes (gloo).

Real launches of the command line on the tiny model, each compared with a single-process run of the same suite
in a store of its own: the same outputs item by item (text exactly; choice log-likelihoods within float32
rounding, since the two processes batch different items together), the same metrics. A launch killed mid-run is
launched again and finishes the run, generating only what was missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import func, select

from evaltune.cli import cli
from evaltune.db.engine import make_engine, open_store
from evaltune.db.evaluation import Generation, Run, RunMetric, SuiteItem
from evaltune.db.sweeps import Sweep, SweepCell
from evaltune.harness.distributed import SINGLE, Launch, current_launch
from evaltune.settings import SettingError
from tests.conftest import invoke_main
from tests.fault_helpers import PROJECT_ROOT, read
from tests.fixtures.postgres import _free_port

TEXT_ITEMS, CHOICE_ITEMS = 48, 6  # enough work that a kill lands part-way through it
ITEMS = TEXT_ITEMS + CHOICE_ITEMS
SCORERS = ["exact_match", "token_f1", "choice_accuracy"]
LAUNCH_TIMEOUT_S = 240
FIRST = 8  # outputs stored when the launch is killed

Outputs = dict[str, tuple[str | None, list[float] | None]]  # item key -> (output, choice log-likelihoods)


def _write_suite(folder: Path) -> Path:
    """Text items of varied prompt length and a few multiple-choice items, decoded greedily."""
    items: list[dict[str, Any]] = [
        {"id": f"q{i:02d}", "input": f"Question {i}: " + "what comes next? " * (1 + i % 5),
         "references": [f"answer {i}"]} for i in range(TEXT_ITEMS)]
    items += [{"id": f"mc{i}", "input": f"Q: Is item {i} blue?\nA:", "choices": ["yes", "no", "green"],
               "gold": [i % 3]} for i in range(CHOICE_ITEMS)]
    generation = {"max_new_tokens": 40, "temperature": 0.0, "batch_size": 2}
    path = folder / "dp.yaml"
    path.write_text(yaml.safe_dump({"name": "dp", "generation": generation, "scorers": SCORERS, "items": items}))
    return path


@pytest.fixture(scope="module")
def suite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_suite(tmp_path_factory.mktemp("dp_suite"))


@pytest.fixture(scope="module")
def single_process(suite_file: Path, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The store URL of the same suite run by one process (in-process, through the command line)."""
    folder = tmp_path_factory.mktemp("dp_single")
    url = f"sqlite:///{folder / 'single.db'}"
    done = CliRunner().invoke(cli, ["run", str(suite_file), "--model", str(tiny_model_dir)],
                              env={"EVALTUNE_DB_URL": url, "EVALTUNE_HOME": str(folder)}, catch_exceptions=False)
    assert done.exit_code == 0, done.output
    return url


def _accelerate(*args: str) -> list[str]:
    """``accelerate launch`` of 2 CPU processes: ``--multi_gpu`` starts them without GPUs (``--cpu`` starts one)."""
    return [str(Path(sys.executable).parent / "accelerate"), "launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(_free_port()), "-m", "evaltune", *args]


def _torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
            str(_free_port()), "-m", "evaltune", *args]


def _env(url: str) -> dict[str, str]:
    # One torch thread per process, and no GPU even where one is: this is the CPU (gloo) path.
    return os.environ | {"EVALTUNE_DB_URL": url, "EVALTUNE_THREADS": "1", "OMP_NUM_THREADS": "1",
                         "CUDA_VISIBLE_DEVICES": ""}


def _launch(command: list[str], url: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, env=_env(url), cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=LAUNCH_TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done


def _outputs(url: str) -> Outputs:
    def query(session: Any) -> Outputs:
        rows = session.execute(select(SuiteItem.key, Generation.output, Generation.choice_logprobs)
                               .join(SuiteItem, SuiteItem.id == Generation.item_id))
        return {key: (output, logprobs) for key, output, logprobs in rows}
    return dict(read(url, query))


def _generation_ids(url: str) -> dict[str, int]:
    rows = read(url, lambda s: list(s.execute(select(SuiteItem.key, Generation.id)
                                               .join(SuiteItem, SuiteItem.id == Generation.item_id))))
    return dict(rows)


def _metrics(url: str) -> dict[str, tuple[float | None, float | None, float | None, int]]:
    rows = read(url, lambda s: list(s.execute(select(RunMetric.name, RunMetric.value, RunMetric.ci_low,
                                                     RunMetric.ci_high, RunMetric.n))))
    return {name: (value, low, high, n) for name, value, low, high, n in rows}


def _runs(url: str) -> list[tuple[int, str]]:
    return read(url, lambda s: list(s.execute(select(Run.id, Run.status)).tuples()))


def _assert_same_run(url: str, reference: str) -> None:
    """One completed run holding every output once, equal to the single-process run's outputs and metrics."""
    assert [status for _, status in _runs(url)] == ["completed"]
    assert read(url, lambda s: s.scalar(select(func.count()).select_from(Generation))) == ITEMS
    ours, theirs = _outputs(url), _outputs(reference)
    assert ours.keys() == theirs.keys() and len(ours) == ITEMS
    for key, (output, logprobs) in theirs.items():
        assert ours[key][0] == output, key  # greedy text: exactly the same
        if logprobs is not None:  # different batch neighbours move float32 sums in the last digits only
            assert ours[key][1] == pytest.approx(logprobs, abs=1e-4), key
    ours_metrics, their_metrics = _metrics(url), _metrics(reference)
    assert ours_metrics.keys() == their_metrics.keys() and ours_metrics
    for name, values in their_metrics.items():
        assert ours_metrics[name] == pytest.approx(values), name


@pytest.mark.slow
def test_an_accelerate_launch_of_two_processes_stores_the_run_one_process_makes(
    suite_file: Path, tiny_model_dir: Path, single_process: str, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'launched.db'}"
    done = _launch(_accelerate("run", str(suite_file), "--model", str(tiny_model_dir)), url)
    # The main process alone printed the summary, for the whole run; the other one line on stderr.
    assert done.stdout.count("run 1: suite dp on ") == 1, done.stdout
    assert f"outputs: {ITEMS} ({ITEMS} generated, 0 from cache, 0 already stored)" in done.stdout
    assert f"rank 1: {ITEMS // 2} outputs ({ITEMS // 2} generated, 0 from cache) into run 1" in done.stderr
    assert "rank 0:" not in done.stderr and done.stderr.count("loaded in ") == 1
    _assert_same_run(url, single_process)


def _write_sweep_suite(folder: Path) -> Path:
    """Two prompt variants of a dozen text items: ``evaltune run`` makes a sweep of two cells."""
    items = [{"id": f"s{i:02d}", "input": f"Item {i}: " + "name the next word " * (1 + i % 3),
              "references": [f"word {i}"]} for i in range(12)]
    prompts = {"plain": {"template": "{{ input }}"}, "asked": {"template": "Q: {{ input }}\nA:"}}
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump({"name": "dp-sweep", "generation": {"max_new_tokens": 16, "temperature": 0.0},
                                    "scorers": ["token_f1"], "prompts": prompts, "items": items}))
    return path


def _cell_outputs(url: str) -> dict[tuple[str, str], str | None]:
    rows = read(url, lambda s: list(s.execute(
        select(SweepCell.variant, SuiteItem.key, Generation.output)
        .join(Generation, Generation.run_id == SweepCell.run_id).join(SuiteItem, SuiteItem.id == Generation.item_id))))
    return {(variant, key): output for variant, key, output in rows}


def _cell_metrics(url: str) -> dict[tuple[str, str], float | None]:
    rows = read(url, lambda s: list(s.execute(
        select(SweepCell.variant, RunMetric.name, RunMetric.value)
        .join(RunMetric, RunMetric.run_id == SweepCell.run_id))))
    return {(variant, name): value for variant, name, value in rows}


@pytest.mark.slow
@pytest.mark.postgres
def test_a_sweep_launched_into_postgresql_shards_each_cell_and_equals_the_one_process_sweep(
    tiny_model_dir: Path, postgres_url: str, tmp_path: Path
) -> None:
    suite = _write_sweep_suite(tmp_path)
    args = ["run", str(suite), "--model", str(tiny_model_dir)]
    single = f"sqlite:///{tmp_path / 'single_sweep.db'}"
    alone = CliRunner().invoke(cli, args, env={"EVALTUNE_DB_URL": single}, catch_exceptions=False)
    assert alone.exit_code == 0, alone.output

    done = _launch(_accelerate(*args), postgres_url)
    assert done.stdout.count("sweep 1: 'evaltune sweeps show 1") == 1, done.stdout  # the matrix, once
    assert "rank 1: 12 outputs (12 generated, 0 from cache) into sweep 1" in done.stderr  # 6 of each cell
    assert read(postgres_url, lambda s: s.scalar(select(Sweep.status))) == "completed"
    assert [status for _, status in _runs(postgres_url)] == ["completed", "completed"]
    launched = _cell_outputs(postgres_url)
    assert len(launched) == 24 and launched == _cell_outputs(single)
    assert _cell_metrics(postgres_url) == pytest.approx(_cell_metrics(single))


def _start(command: list[str], url: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(command, env=_env(url), cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT)


def _worker(launcher: subprocess.Popen[bytes], rank: int) -> psutil.Process:
    """The launch's process of ``rank`` (the launcher starts each worker in a session of its own)."""
    deadline = time.monotonic() + LAUNCH_TIMEOUT_S
    while time.monotonic() < deadline:
        for child in psutil.Process(launcher.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if child.environ().get("RANK") == str(rank):
                    return child
        time.sleep(0.05)
    raise AssertionError(f"no process of rank {rank} started")


def _kill_when_stored(victim: psutil.Process, url: str, count: int, launcher: subprocess.Popen[bytes],
                      log: Path) -> None:
    """Kill -9 ``victim`` as soon as ``count`` outputs are stored (polled on one open connection: the tiny model
    makes an output every few milliseconds)."""
    engine = make_engine(url)
    deadline = time.monotonic() + LAUNCH_TIMEOUT_S
    try:
        with engine.connect() as connection:
            while (connection.scalar(select(func.count()).select_from(Generation)) or 0) < count:
                connection.rollback()  # a fresh snapshot on the next poll
                assert launcher.poll() is None, f"it exited before {count} outputs were stored:\n{log.read_text()}"
                assert time.monotonic() < deadline, f"no {count} outputs in {LAUNCH_TIMEOUT_S} s:\n{log.read_text()}"
                time.sleep(0.005)
    finally:
        engine.dispose()
    victim.send_signal(signal.SIGKILL)


@pytest.mark.slow
def test_a_launch_whose_process_was_killed_resumes_and_generates_only_the_missing_outputs(
    suite_file: Path, tiny_model_dir: Path, single_process: str, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'killed.db'}"
    open_store(url).close()  # migrated before the launch starts, so that the test can poll it
    # One output per batch: the store fills a little at a time, and the kill lands part-way.
    args = ("run", str(suite_file), "--model", str(tiny_model_dir), "--batch-size", "1", "--json")
    log = tmp_path / "killed.log"
    launcher = _start(_torchrun(*args), url, log)
    rank_1 = _worker(launcher, 1)
    _kill_when_stored(rank_1, url, FIRST, launcher, log)
    # The launcher stops the other process and fails: the whole launch is gone, its run left to be resumed.
    assert launcher.wait(timeout=60) != 0
    assert not psutil.Process().children(recursive=True), "a process of the killed launch is still running"
    before = _generation_ids(url)
    assert FIRST <= len(before) < ITEMS, log.read_text()
    assert [status for _, status in _runs(url)] == ["running"]

    done = _launch(_accelerate(*args), url)  # the same run, whichever launcher starts it
    summary = json.loads(done.stdout)
    assert summary["resumed"] is True, done.stdout[:1500] + done.stderr[-1500:]
    stats = summary["stats"]
    assert (stats["already_stored"], stats["generated"], stats["from_cache"]) == (len(before), ITEMS - len(before), 0)
    after = _generation_ids(url)
    assert all(after[key] == row_id for key, row_id in before.items())  # nothing generated twice or rewritten
    _assert_same_run(url, single_process)


def test_one_process_is_no_launch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert current_launch() is SINGLE
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert current_launch() is SINGLE


def test_a_world_size_that_is_not_a_number_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], suite_file: Path, tiny_model_dir: Path,
    tmp_path: Path
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(SettingError, match="WORLD_SIZE='two' is not a whole number"):
        current_launch()
    url = f"sqlite:///{tmp_path / 'untouched.db'}"
    monkeypatch.setenv("EVALTUNE_DB_URL", url)
    code, out, err = invoke_main(["run", str(suite_file), "--model", str(tiny_model_dir)], monkeypatch, capsys)
    assert code == 2 and out == "" and "error: WORLD_SIZE='two' is not a whole number" in err
    assert not (tmp_path / "untouched.db").exists()  # refused before the store was opened


class _TwoMachineState:
    """accelerate's ``PartialState`` as rank 0 of a launch of 4 processes on 2 machines sees it (no process group
    is joined: the other processes do not exist)."""

    process_index, num_processes, local_process_index = 0, 4, 0


def test_a_launch_over_several_machines_into_a_sqlite_file_is_refused_before_anything_is_stored(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], suite_file: Path, tiny_model_dir: Path,
    tmp_path: Path
) -> None:
    monkeypatch.setattr("evaltune.harness.distributed._state", _TwoMachineState)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert current_launch() == Launch(0, 4, 0, machines=2)
    monkeypatch.setenv("EVALTUNE_DB_URL", f"sqlite:///{tmp_path / 'local.db'}")
    code, out, err = invoke_main(["run", str(suite_file), "--model", str(tiny_model_dir)], monkeypatch, capsys)
    assert code == 2 and out == ""
    assert "runs on 2 machines but the store is a SQLite file" in err and "set EVALTUNE_DB_URL to a PostgreSQL" in err
    assert not (tmp_path / "local.db").exists()


def test_shards_are_disjoint_cover_the_work_and_mix_lengths_and_kinds(
    tiny_model_dir: Path, suite_file: Path
) -> None:
    from evaltune.harness.loaders import load_suite
    from evaltune.harness.model_resolution import resolve_model
    from evaltune.harness.work import plan_work

    suite = load_suite(str(suite_file))
    backend = resolve_model(str(tiny_model_dir), home=tiny_model_dir, threads=1).load()
    try:
        work = plan_work(backend, suite.items, suite.generation, seed=0)
    finally:
        backend.close()
    shards = [Launch(rank, 3).shard(work) for rank in range(3)]
    keys = [{(w.item.id, w.sample_index) for w in shard} for shard in shards]
    assert sum(map(len, keys)) == len(work) and set().union(*keys) == {(w.item.id, w.sample_index) for w in work}
    assert {len(shard) for shard in shards} == {ITEMS // 3}
    assert all(sum(w.item.is_multiple_choice for w in shard) == CHOICE_ITEMS // 3 for shard in shards)
    assert shards == [Launch(rank, 3).shard(list(reversed(work))) for rank in range(3)]  # the same on every process

