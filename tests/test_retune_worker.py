"""``evaltune worker`` on a job an older evaltune queued, over agreement-weighted rows: it loads the old config
(noting the setting it does not know), draws rows by weight, and prints no FutureWarning and no loading bars."""

from __future__ import annotations

import itertools
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from evaltune.cli import cli
from evaltune.db.engine import Store, open_store
from evaltune.db.training import RetuneJob
from evaltune.feedback_ui.answers import SingleAnswer
from evaltune.feedback_ui.campaigns import create_campaign
from evaltune.retune.datasets import dataset_records
from tests.fixtures.feedback_seed import rate_campaign, seed_users
from tests.fixtures.retune_seed import CORRECTION, rate_base_run

torch.set_num_threads(1)
# A KTO job's config as evaltune stored it before schema versions (LoRA nested, beta and sft_weight for every
# method), plus "warmup_ratio", a setting this version does not have.
OLD_JOB_CONFIG = """{"method": "kto", "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": "all-linear"},
 "learning_rate": 0.001, "epochs": 1.0, "batch_size": 8, "gradient_accumulation_steps": 1, "max_length": 256,
 "seed": 0, "beta": 0.1, "sft_weight": 1.0, "logging_steps": 1, "save_steps": 0, "merge": false, "report_to": [],
 "warmup_ratio": 0.1}"""


@pytest.fixture
def progress_bars_restored(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The worker switches the libraries' progress bars off for its process; give them back to the other tests."""
    from datasets.utils import are_progress_bars_disabled, enable_progress_bars
    from transformers.utils import logging

    for name in ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS"):
        monkeypatch.delenv(name, raising=False)  # monkeypatch puts back what was there before the worker set it
    transformers_bars, datasets_bars = logging.is_progress_bar_enabled(), not are_progress_bars_disabled()
    yield
    if transformers_bars:
        logging.enable_progress_bar()
    if datasets_bars:
        enable_progress_bars()


def _cli(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _two_raters_disagree_on_half_the_outputs(store: Store, run_id: int) -> int:
    """A campaign on the run rated by two annotators through the app's queue: one thumbs down every output and
    corrects it, the other thumbs up every other output. Returns the campaign's id."""
    torn_votes = itertools.cycle([True, False])
    with store.session_scope() as session:
        campaign = create_campaign(session, None, name="two raters", run_ids=[run_id], overlap=2)
        raters = seed_users(session, {"sure": "annotator", "torn": "annotator"})
        rate_campaign(session, raters["sure"], campaign.id,
                      lambda _task: SingleAnswer(likert=1, hallucination=False, thumbs=False, correction=CORRECTION))
        rate_campaign(session, raters["torn"], campaign.id,
                      lambda _task: SingleAnswer(likert=3, hallucination=False, thumbs=next(torn_votes)))
        return campaign.id


def test_the_worker_runs_an_old_weighted_job_with_no_future_warning_and_no_loading_bars(
    tiny_model_dir: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str], progress_bars_restored: None
) -> None:
    store = open_store()
    rated = rate_base_run(store, tmp_path, tiny_model_dir)
    campaign_id = _two_raters_disagree_on_half_the_outputs(store, rated.base_run_id)
    built = _cli("data", "build", "--campaign", str(campaign_id), "--strategy", "kto", "--weight-by-agreement",
                 "--holdout", "0")
    dataset_id = int(built.split()[1])
    with store.sessions() as session:
        weights = [row["weight"] for row in dataset_records(session, dataset_id, weights=True)]
    assert sorted(set(weights)) == [0.5, 1.0] and weights.count(0.5) == 8  # the torn half
    _cli("retune", "--model", f"model:{rated.base_model_id}", "--dataset", str(dataset_id))
    with store.session_scope() as session:  # as an older evaltune would have stored the job
        session.get_one(RetuneJob, 1).config = json.loads(OLD_JOB_CONFIG)
    assert "warning: the stored setting warmup_ratio=0.1 was ignored" in _cli("jobs", "show", "1")
    capfd.readouterr()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        worked = CliRunner().invoke(cli, ["worker", "--once"], catch_exceptions=False)
    printed = capfd.readouterr()

    assert worked.exit_code == 0 and "job 1 succeeded: adapter model:" in worked.output, worked.output
    future = [f"{w.filename}:{w.lineno}: {w.message}" for w in caught if issubclass(w.category, FutureWarning)]
    assert future == []
    for output in (worked.output, printed.out, printed.err):
        assert "Loading weights" not in output and "Tokenizing" not in output
    with store.sessions() as session:
        log = session.get_one(RetuneJob, 1).log
    assert "warning: the stored setting warmup_ratio=0.1 was ignored" in log
    assert "drawing rows in proportion to their weight (0.50 to 1.00), with replacement" in log
    store.close()
