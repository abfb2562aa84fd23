"""The ``vllm:`` backend: resolved without importing vllm, refused with the fix where it cannot run, its options
turned into vLLM's engine and sampling arguments, and (on a CUDA GPU with vllm installed) the same greedy outputs
and log-likelihoods as the hf backend within bfloat16's precision."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

import pytest
import torch

from evaltune.harness.backends.base import BackendError, GenerationRequest, LoglikelihoodRequest
from evaltune.harness.backends.registry import LoadOptions
from evaltune.harness.backends.vllm import (
    INSTALL,
    continuation_logprob,
    engine_gpus,
    engine_kwargs,
    fit_to_length,
    sampling_kwargs,
)
from evaltune.harness.distributed import SINGLE, Launch
from evaltune.harness.model_resolution import resolve_model
from evaltune.harness.suite import GenerationSettings
from tests.conftest import invoke_main

HAS_VLLM = importlib.util.find_spec("vllm") is not None
GPU_REASON = ("needs vllm and a CUDA GPU: " + ("vllm is not installed" if not HAS_VLLM else "torch sees no CUDA GPU")
              + "; bench/gpu_check.py runs this test on a GPU machine")


class NoVllm(MetaPathFinder):
    """Records any attempt to import vllm, and makes it fail as if vllm were not installed."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def find_spec(self, name: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if name == "vllm" or name.startswith("vllm."):
            self.asked.append(name)
            raise ModuleNotFoundError(f"No module named '{name}'")
        return None


@pytest.fixture
def no_vllm(monkeypatch: pytest.MonkeyPatch) -> NoVllm:
    finder = NoVllm()
    monkeypatch.setattr(sys, "meta_path", [finder, *sys.meta_path])
    for name in [n for n in sys.modules if n == "vllm" or n.startswith("vllm.")]:
        monkeypatch.delitem(sys.modules, name)
    return finder


def test_a_vllm_spec_resolves_without_importing_vllm(tiny_model_dir: Path, no_vllm: NoVllm) -> None:
    resolved = resolve_model(f"vllm:{tiny_model_dir}", home=tiny_model_dir.parent)
    assert resolved.backend_kind == "vllm" and resolved.location == str(tiny_model_dir.resolve())
    assert resolved.display_name == f"{tiny_model_dir.name} (vllm)"
    assert no_vllm.asked == []
    with pytest.raises(BackendError, match="no folder at"):
        resolve_model("vllm:./no/such/model", home=tiny_model_dir.parent)
    with pytest.raises(BackendError, match="--adapter cannot be applied to 'vllm:"):
        resolve_model(f"vllm:{tiny_model_dir}", adapter=str(tiny_model_dir), home=tiny_model_dir.parent)


def test_without_vllm_the_run_exits_2_naming_the_extra(
    tiny_model_dir: Path, no_vllm: NoVllm, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = invoke_main(["run", "smoke", "--model", f"vllm:{tiny_model_dir}"], monkeypatch, capsys)
    assert code == 2 and out == "" and err.splitlines() == [f"error: {INSTALL}"]  # before anything loads
    assert "pip install 'evaltune[vllm]'" in err and no_vllm.asked == ["vllm"]
    from evaltune.harness.backends.vllm import VLLMBackend

    with pytest.raises(BackendError, match=r"vllm is not installed: pip install 'evaltune\[vllm\]'"):
        VLLMBackend(str(tiny_model_dir), LoadOptions())  # a stored vllm model version loads this way


def test_an_adapter_is_refused_once_vllm_is_there(
    tiny_model_dir: Path, tiny_adapter_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    """With vllm installed (an empty stand-in package here: the refusal comes before anything imports it)."""
    (tmp_path / "vllm").mkdir()
    (tmp_path / "vllm" / "__init__.py").write_text("raise ImportError('the stand-in must not be imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    code, _, err = invoke_main(["run", "smoke", "--model", f"vllm:{tiny_model_dir}", "--adapter",
                                str(tiny_adapter_dir)], monkeypatch, capsys)
    assert code == 2 and "--adapter cannot be applied to 'vllm:" in err and "merge the adapter" in err


def test_what_no_machine_could_run_is_refused_before_vllm_is_imported(
    tiny_model_dir: Path, no_vllm: NoVllm, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    model = ["run", "smoke", "--model", f"vllm:{tiny_model_dir}"]
    code, _, err = invoke_main([*model, "--device", "cpu"], monkeypatch, capsys)
    assert code == 2 and "runs on CUDA GPUs, not --device cpu; drop the vllm: prefix" in err
    code, _, err = invoke_main([*model, "--data-parallel", "2"], monkeypatch, capsys)
    assert code == 2 and "torchrun --nproc-per-node 2 -m evaltune run" in err
    assert no_vllm.asked == []


def test_load_options_become_the_engine_arguments() -> None:
    options = LoadOptions(dtype="bfloat16", device="auto", tensor_parallel=4, max_batch_size=512)
    assert engine_kwargs("/models/llama", options, "bfloat16") == {
        "model": "/models/llama", "tokenizer": "/models/llama", "dtype": "bfloat16", "tensor_parallel_size": 4,
        "seed": 0, "trust_remote_code": False, "max_num_seqs": 512}
    assert "max_num_seqs" not in engine_kwargs("/m", LoadOptions(), "float16")  # vLLM's own default


def test_each_engine_gets_its_own_gpus() -> None:
    assert engine_gpus(LoadOptions(tensor_parallel=4), 8, SINGLE) == [0, 1, 2, 3]
    assert engine_gpus(LoadOptions(device="cuda:5"), 8, SINGLE) == [5]
    second = Launch(rank=1, world_size=2, local_rank=1)  # process 1 of 2, with TP 4: GPUs 4 to 7
    assert engine_gpus(LoadOptions(tensor_parallel=4, data_parallel=2), 8, second) == [4, 5, 6, 7]
    with pytest.raises(BackendError, match=r"needs GPUs 4 to 7 \(2 processes x 4\), but this machine has 6"):
        engine_gpus(LoadOptions(tensor_parallel=4), 6, second)
    with pytest.raises(BackendError, match="--device cuda:1 names one GPU, but --tensor-parallel 2 needs 2"):
        engine_gpus(LoadOptions(device="cuda:1", tensor_parallel=2), 8, SINGLE)
    with pytest.raises(BackendError, match="--data-parallel 3 does not match the 2 launched processes"):
        engine_gpus(LoadOptions(data_parallel=3), 8, Launch(rank=0, world_size=2, local_rank=0))
    with pytest.raises(BackendError, match="needs a CUDA GPU and torch sees none"):
        engine_gpus(LoadOptions(), 0, SINGLE)


def test_generation_settings_become_sampling_arguments() -> None:
    greedy = sampling_kwargs(GenerationSettings(max_new_tokens=32, stop=("\n\n",)), seed=7, stop_token_ids=[0])
    assert greedy == {"n": 1, "max_tokens": 32, "temperature": 0.0, "top_p": 1.0, "stop": ["\n\n"],
                      "stop_token_ids": [0], "skip_special_tokens": True}  # greedy: no seed, as hf ignores it
    sampled = sampling_kwargs(GenerationSettings(temperature=0.7, top_p=0.9), seed=7, stop_token_ids=[])
    assert sampled["seed"] == 7 and sampled["temperature"] == 0.7 and sampled["stop"] is None


def test_log_likelihoods_are_read_as_lm_eval_reads_them() -> None:
    class Logprob:  # vLLM's record of one token's log-probability
        def __init__(self, logprob: float):
            self.logprob = logprob

    tokens = [5, 6, 7, 8]
    prompt_logprobs = [None, {6: Logprob(-1.0)}, {7: Logprob(-0.5)}, {8: Logprob(-2.0), 9: Logprob(-0.1)}]
    assert continuation_logprob(tokens, prompt_logprobs, 2) == (-2.5, False)  # 9 was likelier than 8
    assert continuation_logprob(tokens, [*prompt_logprobs[:3], {8: -0.2}], 2) == (pytest.approx(-0.7), True)
    assert fit_to_length([1, 2, 3, 4, 5], [6, 7], 6) == ([3, 4, 5, 6, 7], 3)  # room kept for one generated token
    assert fit_to_length([1, 2], [3], 512) == ([1, 2, 3], 2)


def build_small_llama(folder: Path) -> Path:
    """A random Llama that vLLM's attention kernels take (head size 64), with the tests' tokenizer, in bfloat16."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.fixtures.tiny_model import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    config = LlamaConfig(hidden_size=256, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=len(tokenizer), max_position_embeddings=512,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # peaked distributions, so that greedy choices are not coin flips in bfloat16
        for param in model.parameters():
            if param.dim() > 1:
                param.normal_(0.0, 0.1)
    model.to(torch.bfloat16).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.skipif(not (HAS_VLLM and torch.cuda.is_available()), reason=GPU_REASON)
def test_vllm_matches_hf_greedy_outputs_and_log_likelihoods_in_bfloat16(tmp_path: Path) -> None:
    from evaltune.harness.backends.hf import HFBackend, HFConfig
    from evaltune.harness.backends.vllm import VLLMBackend

    folder = build_small_llama(tmp_path / "llama")
    settings = GenerationSettings(max_new_tokens=16)
    prompts = [f"Question {i}: what is {i} plus {3 * i}? Answer:" for i in range(32)]
    asked = [LoglikelihoodRequest(p, answer) for p in prompts[:16] for answer in (" four", " seven", " 12")]
    options = LoadOptions(dtype="bfloat16", device="cuda")
    engine = VLLMBackend(str(folder), options)  # first: vLLM takes most of the GPU's free memory
    try:
        on_vllm = [c.text for c in engine.generate([GenerationRequest(p, settings) for p in prompts])]
        vllm_ll = [r.logprob for r in engine.loglikelihood(asked)]
        fingerprint = engine.fingerprint
    finally:
        engine.close()
    hf = HFBackend(HFConfig(str(folder), dtype="bfloat16", device="cuda"))
    on_hf = [c.text for c in hf.generate([GenerationRequest(p, settings) for p in prompts])]
    hf_ll = [r.logprob for r in hf.loglikelihood(asked)]
    same = sum(a == b for a, b in zip(on_vllm, on_hf, strict=True))
    assert same >= 0.8 * len(prompts), list(zip(on_vllm, on_hf, strict=True))
    # bfloat16 keeps about 3 significant digits: allow 5% of the value plus 0.1 nats per request.
    assert all(abs(a - b) <= 0.05 * abs(b) + 0.1 for a, b in zip(vllm_ll, hf_ll, strict=True)), (vllm_ll, hf_ll)
    assert fingerprint != hf.fingerprint  # the engine is part of the model's identity
