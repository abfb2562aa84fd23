"""The GPU path, checked on a machine with a CUDA GPU: bf16 generation, log-likelihoods and a LoRA DPO retune.

    python bench/gpu_check.py                 # prints one line per check and exits 1 if one failed
    python bench/gpu_check.py --device cpu --rows 16   # the same code paths on the CPU (checks the script)

1. Generation: the built-in regression suite's prompts through ``HFBackend`` on the tests' tiny model, on the
   CPU in float32, and on the GPU in float32 and with ``dtype auto`` (bfloat16 there); how many outputs agree.
2. Log-likelihoods: each suite prompt with its first reference as the continuation, the same three ways.
3. Speed: a SmolLM2-135M-shaped Llama with random weights (the default model's shape: its weights do not
   travel to a GPU machine), prompts of 20-120 tokens and 64 new tokens, our decoding loop against
   ``model.generate`` on the same batches, in bfloat16.
4. Retune: ``retune.train`` with DPO and LoRA on the GPU (bf16 switched on), loss logged, LoRA B weights moved
   off zero, and the adapter loaded by ``HFBackend`` on the GPU generates.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evaltune.harness.backends.base import GenerationRequest, LoglikelihoodRequest
from evaltune.harness.backends.hf import HFBackend, HFConfig
from evaltune.harness.suite import GenerationSettings

failures: list[str] = []
DEVICE = "cuda"


def check(name: str, ok: bool, detail: str) -> None:
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}", flush=True)
    if not ok:
        failures.append(name)


def suite_prompts() -> tuple[list[Any], list[tuple[str, str]]]:
    from evaltune.harness.builtin import builtin_path
    from evaltune.harness.loaders.yaml_suite import read_suite_file
    from evaltune.harness.work import compose_input

    suite = read_suite_file(builtin_path("regression"))
    prompts = [compose_input(item) for item in suite.items]
    pairs = [(str(compose_input(item)), " " + item.references[0]) for item in suite.items if item.references]
    return prompts, pairs


def outputs(model: Path, device: str, dtype: str, prompts: list[Any]) -> tuple[list[str], str, float]:
    backend = HFBackend(HFConfig(str(model), device=device, dtype=dtype, threads=4))
    settings = GenerationSettings(max_new_tokens=32, batch_size=64)
    requests = [GenerationRequest(backend.render(p, settings), settings) for p in prompts]
    started = time.perf_counter()
    texts = [c.text for c in backend.generate(requests)]
    return texts, str(backend.dtype), time.perf_counter() - started


def logprobs(model: Path, device: str, dtype: str, pairs: list[tuple[str, str]]) -> list[float]:
    backend = HFBackend(HFConfig(str(model), device=device, dtype=dtype, threads=4))
    return [r.logprob for r in backend.loglikelihood([LoglikelihoodRequest(c, x) for c, x in pairs])]


def check_generation(model: Path) -> None:
    prompts, pairs = suite_prompts()
    cpu, _, cpu_s = outputs(model, "cpu", "float32", prompts)
    gpu32, _, gpu32_s = outputs(model, DEVICE, "float32", prompts)
    gpu16, dtype, gpu16_s = outputs(model, DEVICE, "auto", prompts)
    same32 = sum(a == b for a, b in zip(cpu, gpu32, strict=True))
    same16 = sum(a == b for a, b in zip(cpu, gpu16, strict=True))
    check("generation dtype auto on cuda", dtype == "torch.bfloat16", dtype)
    check("generation cuda fp32 = cpu fp32", same32 >= 0.95 * len(cpu),
          f"{same32}/{len(cpu)} outputs identical ({cpu_s:.1f} s cpu, {gpu32_s:.1f} s cuda fp32)")
    check("generation cuda bf16 runs", all(isinstance(t, str) for t in gpu16),
          f"{same16}/{len(cpu)} outputs identical to cpu fp32 ({gpu16_s:.1f} s)")
    ref = logprobs(model, "cpu", "float32", pairs)
    for dtype_name, tolerance in (("float32", 1e-3), ("auto", 0.5)):
        got = logprobs(model, DEVICE, dtype_name, pairs)
        worst = max(abs(a - b) for a, b in zip(ref, got, strict=True))
        check(f"log-likelihoods cuda {dtype_name} vs cpu fp32", worst <= tolerance,
              f"{len(pairs)} pairs, largest difference {worst:.2e} nats")


def smollm_shaped_model() -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, vocab_size=49152, max_position_embeddings=2048,
                         tie_word_embeddings=True, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(DEVICE, torch.bfloat16).eval()
    model.generation_config.eos_token_id = None  # every row runs to the limit in both loops
    return model


def check_speed(rows: int = 256, batch: int = 128, new_tokens: int = 64) -> None:
    import torch

    from evaltune.harness.backends.hf_decode import DecodeLimits, decode

    model = smollm_shaped_model()
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(20, 121, (rows,), generator=generator).tolist()
    prompts = [torch.randint(3, 49152, (n,), generator=generator).tolist() for n in sorted(lengths, reverse=True)]
    batches = [prompts[i : i + batch] for i in range(0, rows, batch)]
    limits = DecodeLimits(new_tokens, frozenset())

    def ours() -> int:
        return sum(len(t) for b in batches for t in decode(model, None, b, 0, limits).tokens)

    def bare() -> int:
        done = 0
        for b in batches:
            width = max(map(len, b))
            ids = torch.tensor([[0] * (width - len(p)) + p for p in b], device=DEVICE)
            mask = (torch.arange(width).expand(len(b), width) >= torch.tensor([width - len(p) for p in b])[:, None])
            with torch.inference_mode():
                out = model.generate(input_ids=ids, attention_mask=mask.long().to(DEVICE), max_new_tokens=new_tokens,
                                     min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
            done += (out.shape[1] - width) * len(b)
        return done

    check_pass_cost(model)
    for name, run in (("our decoding loop", ours), ("model.generate", bare)):
        run()  # warm-up: kernels, allocator
        synchronize()
        started = time.perf_counter()
        counts = [run() for _ in range(3)]
        synchronize()
        seconds = (time.perf_counter() - started) / 3
        check(f"speed {name}, SmolLM2-135M shape bf16, batch {batch}", counts == [rows * new_tokens] * 3,
              f"{counts[0]} tokens in {seconds:.2f} s (mean of 3) = {counts[0] / seconds:,.0f} tok/s")


def check_pass_cost(model: Any) -> None:
    """A one-token pass and a 128 x 128-token pass, timed: what a pass is worth in tokens on this device, next
    to the estimate prefill groups by (``harness.backends.hf_prefill.pass_cost_tokens``)."""
    import torch

    from evaltune.harness.backends.hf_prefill import pass_cost_tokens

    def seconds(rows: int, tokens: int) -> float:
        ids = torch.randint(3, 49152, (rows, tokens), device=DEVICE)
        with torch.inference_mode():
            model(input_ids=ids, logits_to_keep=1)  # warm-up
            synchronize()
            started = time.perf_counter()
            for _ in range(5):
                model(input_ids=ids, logits_to_keep=1)
            synchronize()
        return (time.perf_counter() - started) / 5

    one, wide = seconds(1, 1), seconds(128, 128)
    per_token = max(wide - one, 1e-9) / (128 * 128 - 1)
    check("prefill pass cost", True, f"one-token pass {one * 1e3:.2f} ms, 128x128 tokens {wide * 1e3:.2f} ms: "
          f"a pass is worth ~{one / per_token:,.0f} tokens; estimated {pass_cost_tokens(model):,}")


def synchronize() -> None:
    import torch

    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()


def check_retune(model: Path, scratch: Path) -> None:
    import torch
    from safetensors.torch import load_file

    from evaltune.retune.config import DpoConfig
    from evaltune.retune.train import train

    system = {"role": "system", "content": "Answer briefly."}
    records = [{"prompt": [system, {"role": "user", "content": f"Who founded town {i}?"}],
                "chosen": [{"role": "assistant", "content": "I don't know."}],
                "rejected": [{"role": "assistant", "content": f"It was founded by King {i}."}]} for i in range(32)]
    lines: list[str] = []
    started = time.perf_counter()
    result = train(str(model), records, DpoConfig(epochs=2, batch_size=8), scratch, log=lines.append)
    seconds = time.perf_counter() - started
    losses = [entry["loss"] for entry in result.history if "loss" in entry]
    check("retune DPO on cuda", len(losses) > 1 and losses[-1] < losses[0],
          f"{len(losses)} steps in {seconds:.1f} s, loss {losses[0]:.3f} -> {losses[-1]:.3f}" if losses else "no loss")
    weights = load_file(str(result.adapter_dir / "adapter_model.safetensors"))
    moved = [k for k, v in weights.items() if "lora_B" in k and v.abs().max().item() > 0]
    check("retune LoRA B weights trained", bool(moved), f"{len(moved)} lora_B tensors non-zero, dtype "
          f"{next(iter(weights.values())).dtype}; torch.cuda.is_bf16_supported() = {torch.cuda.is_bf16_supported()}")
    backend = HFBackend(HFConfig(str(model), adapter=str(result.adapter_dir), device=DEVICE))
    settings = GenerationSettings(max_new_tokens=16)
    text = backend.generate([GenerationRequest(backend.render("Who founded town 3?", settings), settings)])[0].text
    check("adapter generates on cuda", isinstance(text, str), f"{backend.dtype}: {text[:60]!r}")


def main(argv: list[str] | None = None) -> int:
    import argparse

    import torch

    from tests.fixtures.tiny_model import build_tiny_model

    global DEVICE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (the point), or cpu to try the script itself")
    parser.add_argument("--rows", type=int, default=256, help="prompts in the speed check")
    args = parser.parse_args(argv)
    DEVICE = args.device
    if DEVICE.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA GPU here: this script checks the GPU path (--device cpu tries it on the CPU)")
        return 2
    name = torch.cuda.get_device_name() if DEVICE.startswith("cuda") else "cpu"
    print(f"{name}, torch {torch.__version__}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_model(Path(tmp) / "tiny")
        check_generation(model)
        check_speed(rows=args.rows, batch=min(128, args.rows))
        check_retune(model, Path(tmp) / "retune")
    print(f"{len(failures)} failed" + (f": {', '.join(failures)}" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
