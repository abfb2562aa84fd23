"""``--device`` and ``--dtype``: from the command line to the hf backend, the scoring models and a local judge.

This machine has no CUDA GPU. What needs one is reached two ways: through the CLI, where the refusals a user
meets without a GPU are real; and by ``GPUs``, a small stand-in for ``torch.cuda`` that says how many GPUs there
are and which compute bfloat16, so that the choices made from those answers (a GPU index past the last, bfloat16
on a V100, one GPU per process under a launch) are checked without loading anything on a GPU.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from evaltune import settings
from evaltune.harness import distributed
from evaltune.harness.backends.base import BackendError
from evaltune.harness.backends.devices import Placement, place
from evaltune.harness.backends.hf import HFBackend, HFConfig, folder_digest
from evaltune.harness.distributed import Launch
from evaltune.harness.judges.config import JudgeSpec, parse_judge_block
from evaltune.harness.suite import SuiteError
from tests.conftest import invoke_main

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusals a machine without CUDA gives")


class GPUs:
    """Stands in for ``torch.cuda`` on a machine with ``count`` GPUs of compute capability ``capability``."""

    def __init__(self, count: int, capability: tuple[int, int] = (9, 0), name: str = "NVIDIA H100"):
        self.count, self.capability, self.name = count, capability, name

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: self.count > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: self.count)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: self.capability)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: self.name)


def run(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
        ) -> tuple[int, str, str]:
    return invoke_main(["run", "smoke", "--limit", "2", *args], monkeypatch, capsys)


def model_versions() -> list[tuple[str, str]]:
    """(backend, fingerprint) of every stored model version, oldest first."""
    from sqlalchemy import select

    from evaltune.db.evaluation import ModelVersion
    from evaltune.store import store_session

    with store_session() as session:
        return [(v.backend, v.fingerprint) for v in session.scalars(select(ModelVersion).order_by(ModelVersion.id))]


def test_cpu_float32_runs_and_bfloat16_is_a_new_model_and_a_new_run(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    model = ["--model", str(tiny_model_dir), "--json"]
    code, out, err = run([*model, "--device", "cpu", "--dtype", "float32"], monkeypatch, capsys)
    assert code == 0, err
    first = json.loads(out)
    code, out, err = run([*model, "--device", "cpu", "--dtype", "bfloat16"], monkeypatch, capsys)
    assert code == 0, err
    in_bf16 = json.loads(out)
    assert in_bf16["run_id"] != first["run_id"] and in_bf16["reused"] is False
    (_, in_float32), (_, in_bfloat16) = model_versions()
    assert in_float32 != in_bfloat16
    code, out, err = run([*model, "--dtype", "float32"], monkeypatch, capsys)  # auto is the CPU here
    assert code == 0 and json.loads(out)["run_id"] == first["run_id"] and json.loads(out)["reused"] is True


def test_cpu_fingerprint_is_the_one_computed_before_devices_existed(tiny_model_dir: Path) -> None:
    backend = HFBackend(HFConfig(str(tiny_model_dir), device="cpu", dtype="float32", threads=1))
    before = {"weights": folder_digest(tiny_model_dir), "adapter": None, "dtype": "float32"}  # no device in it
    assert backend.fingerprint == hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()
    assert HFBackend(HFConfig(str(tiny_model_dir), threads=1)).fingerprint == backend.fingerprint  # auto: cpu here


def test_a_gpu_fingerprint_names_the_kind_of_device_not_its_index(tiny_model_dir: Path) -> None:
    backend = HFBackend(HFConfig(str(tiny_model_dir), device="cpu", dtype="float32", threads=1))
    on_cpu = backend.fingerprint
    backend.placement = Placement("cuda:0", torch.float32)
    on_gpu0 = backend._compute_fingerprint()
    backend.placement = Placement("cuda:1", torch.float32, None)
    assert on_gpu0 != on_cpu and backend._compute_fingerprint() == on_gpu0  # every rank of a launch agrees


@no_gpu
def test_cuda_without_a_gpu_exits_2_with_the_fix(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["--model", str(tiny_model_dir), "--device", "cuda"], monkeypatch, capsys)
    assert code == 2 and out == ""
    assert "--device cuda: torch sees no CUDA GPU here" in err and "use --device cpu, or auto" in err
    assert model_versions() == []  # nothing stored


def test_an_unknown_device_is_refused_before_anything_loads(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["--model", str(tiny_model_dir), "--device", "gpu"], monkeypatch, capsys)
    assert code == 2 and "--device 'gpu' is not one of cpu, cuda, cuda:N" in err


def test_a_gpu_index_past_the_last_gpu_names_the_gpus_there_are(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    GPUs(2).install(monkeypatch)
    code, _, err = run(["--model", str(tiny_model_dir), "--device", "cuda:7"], monkeypatch, capsys)
    assert code == 2 and "--device cuda:7: this machine has 2 CUDA GPUs (cuda:0 to cuda:1)" in err


def test_bfloat16_on_a_gpu_without_it_says_use_float16(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    GPUs(1, capability=(7, 0), name="Tesla V100-SXM2-16GB").install(monkeypatch)
    code, _, err = run(["--model", str(tiny_model_dir), "--device", "cuda", "--dtype", "bfloat16"], monkeypatch,
                       capsys)
    assert code == 2
    assert "the GPU cuda:0 (Tesla V100-SXM2-16GB) does not compute bfloat16" in err and "--dtype float16" in err
    assert place("cuda:0", "auto").dtype == torch.float32  # auto picks what the GPU computes


def test_auto_spreads_over_the_gpus_but_one_gpu_per_process_under_a_launch(monkeypatch: pytest.MonkeyPatch) -> None:
    GPUs(4).install(monkeypatch)
    assert place("auto", "auto") == Placement("cuda:0", torch.bfloat16, "auto")
    assert place("cuda:2", "float16") == Placement("cuda:2", torch.float16)
    # Process 3 of a launch of 4 (harness.distributed reads its place; here it is told, joining no process group).
    monkeypatch.setattr(distributed, "current_launch", lambda: Launch(rank=3, world_size=4, local_rank=3))
    assert place("auto", "auto") == Placement("cuda:3", torch.bfloat16)  # its own copy, no device_map
    assert place("cuda", "auto") == Placement("cuda:3", torch.bfloat16)
    monkeypatch.setattr(distributed, "current_launch", lambda: Launch(rank=5, world_size=8, local_rank=5))
    with pytest.raises(BackendError, match=r"LOCAL_RANK=5.*this machine has 4 CUDA GPUs"):
        place("auto", "auto")


def test_float16_on_the_cpu_generates_what_float32_does(tiny_model_dir: Path) -> None:
    """Allowed on purpose: torch 2.13 computes it on the CPU without NaN, close to float32 (see devices.py)."""
    from evaltune.harness.backends.base import GenerationRequest, LoglikelihoodRequest
    from evaltune.harness.suite import GenerationSettings

    prompts = [f"Question {i}: what is {i} plus {3 * i}? Answer:" for i in range(12)]
    outputs, logprobs = {}, {}
    for dtype in ("float32", "float16"):
        backend = HFBackend(HFConfig(str(tiny_model_dir), device="cpu", dtype=dtype, threads=1))
        settings_ = GenerationSettings(max_new_tokens=12)
        outputs[dtype] = [c.text for c in backend.generate([GenerationRequest(p, settings_) for p in prompts])]
        logprobs[dtype] = [r.logprob for r in backend.loglikelihood([LoglikelihoodRequest(p, " four")
                                                                     for p in prompts])]
    same = sum(a == b for a, b in zip(outputs["float32"], outputs["float16"], strict=True))
    assert same >= 9, outputs
    assert max(abs(a - b) for a, b in zip(logprobs["float32"], logprobs["float16"], strict=True)) < 0.1


def test_scoring_device_comes_from_the_setting_and_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings.scoring_device() == "cpu"
    monkeypatch.setenv("EVALTUNE_SCORING_DEVICE", "CUDA:1")
    assert settings.scoring_device() == "cuda:1"
    monkeypatch.setenv("EVALTUNE_SCORING_DEVICE", "gpu")
    with pytest.raises(settings.SettingError, match="EVALTUNE_SCORING_DEVICE: 'gpu' is not one of"):
        settings.scoring_device()


def test_score_device_moves_the_scoring_models_and_refuses_a_missing_gpu(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from evaltune.metrics.model_loaders import embeddings

    code, _, err = run(["--model", str(tiny_model_dir)], monkeypatch, capsys)
    assert code == 0, err
    monkeypatch.setenv("EVALTUNE_SCORING_DEVICE", "auto")  # --device replaces it; undone after the test
    code, out, err = invoke_main(["score", "1", "--scorers", "semantic_similarity", "--device", "cpu"],
                                 monkeypatch, capsys)
    assert code == 0 and "semantic_similarity" in out, err
    assert embeddings._model()[1].device.type == "cpu" and settings.scoring_device() == "cpu"
    if not torch.cuda.is_available():
        code, _, err = invoke_main(["score", "1", "--scorers", "semantic_similarity", "--device", "cuda"],
                                   monkeypatch, capsys)
        assert code == 2 and "--device cuda: torch sees no CUDA GPU" in err
    code, _, err = invoke_main(["score", "1", "--scorers", "semantic_similarity", "--device", "tpu"],
                               monkeypatch, capsys)
    assert code == 2 and "--device 'tpu' is not one of" in err


def test_a_suite_judge_block_places_a_local_judge_and_only_then_changes_its_identity(tiny_model_dir: Path) -> None:
    from evaltune.harness.judges.local import LocalJudge

    plain = parse_judge_block({"model": str(tiny_model_dir)}, "suite.yaml:3")
    assert plain.identity() == json.dumps({"model": str(tiny_model_dir), "model_name": None, "mode": None},
                                          sort_keys=True)  # what every stored judge identity was made from
    placed = parse_judge_block({"model": str(tiny_model_dir), "device": "cpu", "dtype": "bfloat16"}, "suite.yaml:3")
    assert placed.identity() != plain.identity() and json.loads(placed.identity())["dtype"] == "bfloat16"
    judge = LocalJudge(placed)
    try:
        assert judge.backend.dtype == torch.bfloat16 and judge.backend.device == "cpu"
    finally:
        judge.close()
    with pytest.raises(SuiteError, match=r"judge\.dtype"):
        parse_judge_block({"model": str(tiny_model_dir), "dtype": "fp8"}, "suite.yaml:3")
    endpoint = JudgeSpec("openai:http://127.0.0.1:9/v1", "j", dtype="float16")
    assert "dtype" not in json.loads(endpoint.identity())  # an endpoint's numbers are the server's
