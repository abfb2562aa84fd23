"""--log-to mlflow: an eval run and a retune job logged to MLflow's local store, read back with MLflow's own
client (parameters and metrics equal to what evaltune stored); a tracker that is not installed is refused."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from evaltune.db.engine import open_store
from evaltune.db.training import RetuneJob
from tests.conftest import Cli
from tests.fixtures.retune_seed import write_dpo_rows

mlflow = pytest.importorskip("mlflow", reason="mlflow is not installed (pip install -c constraints.txt mlflow-skinny)")


@pytest.fixture
def tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"  # MLflow's local store: a file, offline
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def _runs(uri: str) -> list[Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("evaltune")
    assert experiment is not None
    return list(client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"]))


def test_an_eval_run_is_logged_with_its_settings_and_metrics(cli: Cli, tiny_model_dir: Path, tmp_path: Path,
                                                             tracking_uri: str) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({"name": "tracked", "generation": {"max_new_tokens": 4},
                                     "scorers": ["exact_match", "length"],
                                     "items": [{"id": f"q{i}", "input": f"Say {i}.", "references": [str(i)]}
                                               for i in range(4)]}))
    code, out, err = cli("run", str(suite), "--model", str(tiny_model_dir), "--json", "--log-to", "mlflow")
    assert code == 0, err
    summary = json.loads(out)
    assert f"logged run {summary['run_id']} to mlflow" in err
    (run,) = _runs(tracking_uri)
    assert run.info.status == "FINISHED"
    assert run.data.params["suite"] == "tracked" and run.data.params["run_id"] == str(summary["run_id"])
    assert run.data.params["max_new_tokens"] == "4" and run.data.tags["evaltune.run_id"] == str(summary["run_id"])
    for metric in summary["metrics"]:
        assert run.data.metrics[metric["name"]] == pytest.approx(metric["value"])
        assert run.data.metrics[f"{metric['name']}.ci_low"] == pytest.approx(metric["ci_low"])
        assert run.data.metrics[f"{metric['name']}.n"] == metric["n"]


def test_a_retune_job_logs_its_config_loss_history_and_lineage(cli: Cli, tiny_model_dir: Path, tmp_path: Path,
                                                               tracking_uri: str) -> None:
    from mlflow.tracking import MlflowClient

    assert cli("data", "import", str(write_dpo_rows(tmp_path / "pairs.jsonl", count=16)))[0] == 0
    code, out, err = cli("retune", "--model", str(tiny_model_dir), "--dataset", "1", "--epochs", "1",
                         "--batch-size", "8", "--log-to", "mlflow", "--here", "--force")
    assert code == 0, out + err
    assert "logged job 1 to mlflow" in out
    store = open_store()
    with store.sessions() as session:
        job = session.get_one(RetuneJob, 1)
        adapter, base, config = job.output_model_id, job.base_model_id, dict(job.config)
    store.close()
    assert config["log_to"] == "mlflow"
    (run,) = _runs(tracking_uri)
    params = run.data.params
    assert params["method"] == "dpo" and params["epochs"] == "1.0" and params["learning_rate"] == "0.0001"
    assert params["lineage.adapter_model_id"] == str(adapter) and params["lineage.base_model_id"] == str(base)
    assert params["lineage.dataset_id"] == "1" and run.data.tags["evaltune.job_id"] == "1"
    history = MlflowClient(tracking_uri).get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == [1, 2]  # 16 rows, batch 8, one epoch: two steps, each logged
    assert all(m.value > 0 for m in history)


def test_a_tracker_that_is_not_installed_is_refused_before_the_run(cli: Cli) -> None:
    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    code, _out, err = cli("run", "smoke", "--model", "nonexistent-folder", "--log-to", "wandb")
    assert code == 2 and "--log-to wandb: the wandb package is not installed" in err
