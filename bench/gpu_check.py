"""Every GPU check of issue 19 in one run (under 8 minutes on one H100): one line per check, each independent.

    python bench/gpu_check.py                    # the point: on a CUDA GPU
    python bench/gpu_check.py --device cpu       # the same script on the CPU: what needs CUDA is skipped, saying why
    OUT=/some/folder python bench/gpu_check.py   # also writes the results to $OUT/gpu_check.json

Checks (a failing or crashing one is recorded and the next runs):
1. generation and log-likelihoods: the built-in regression suite through ``HFBackend`` on the tests' tiny model, CPU
   float32 against the device in float32 and with ``dtype auto`` (bfloat16 on a GPU): outputs that agree, the
   largest log-likelihood difference.
2. ``--device auto``: accelerate's ``device_map`` over this machine's GPUs (``hf_device_map`` set, inputs on the
   first device), generation through it, a fingerprint naming the device kind; a GPU index past the last refused.
3. decoding speed: a SmolLM2-135M-shaped random Llama in bfloat16, our decoding loop against ``model.generate``.
4. throughput: a random Llama shaped like Llama-3.2-1B (hidden 2048, 16 layers, 32 heads, 8 KV heads,
   intermediate 8192, vocab 128256) in bfloat16, greedy, every output run to its limit: evaltune's hf backend,
   lm-eval's ``HFLM`` and (when vllm imports) evaltune's ``vllm:`` backend, at batch 1 and at a large batch, in
   tokens/s and as a share of the roofline peak (below). On the CPU a small stand-in shape runs the same code.
5. the ``vllm:`` backend against hf (``tests/test_vllm_backend.py``'s GPU test, in a process of its own).
6. retune: DPO + LoRA with ``retune.train`` (bfloat16 on a GPU that has it), and the same with ``qlora=True``
   (a 4-bit NF4 base through bitsandbytes); loss falls, LoRA B weights move, the adapter generates.

Peak, per decoding step at batch B (a roofline): the step reads every weight once (bytes = parameters x 2 in
bfloat16; the KV cache is left out, so the bound is generous to short prompts) and does 2 x parameters x B FLOPs;
a step takes at least max(bytes / HBM bandwidth, FLOPs / dense bfloat16 FLOP/s), so the peak is B tokens per that
time: memory-bound (bandwidth / bytes per token of batch 1) at small B, FLOP-bound at large B. Bandwidth and FLOP/s
are the vendor's datasheet numbers for the GPU torch names (H100 SXM: 3.35 TB/s, 989 TFLOP/s).
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evaltune.harness.backends.base import GenerationRequest, LoglikelihoodRequest  # noqa: E402
from evaltune.harness.backends.hf import HFBackend, HFConfig  # noqa: E402
from evaltune.harness.suite import GenerationSettings  # noqa: E402
from evaltune.settings import quiet_third_party_progress  # noqa: E402

DEVICE = "cuda"
RESULTS: list[dict[str, Any]] = []
# Datasheet HBM bandwidth (bytes/s) and dense bfloat16 FLOP/s, by a piece of the name torch gives the GPU.
GPU_PEAKS = [("H200", 4.8e12, 989e12), ("H100 PCIe", 2.0e12, 756e12), ("H100", 3.35e12, 989e12),
             ("A100-SXM4-80GB", 2.039e12, 312e12), ("A100", 1.555e12, 312e12), ("L40S", 0.864e12, 362e12)]
LLAMA_1B = dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                intermediate_size=8192, vocab_size=128256)
CPU_STAND_IN = dict(hidden_size=256, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                    intermediate_size=512, vocab_size=128256)


def record(name: str, status: str, detail: str, **numbers: Any) -> None:
    """One line on stdout and one entry of the JSON results. ``status``: ok, FAIL or skip."""
    print(f"{status:<4} {name}: {detail}", flush=True)
    RESULTS.append({"check": name, "status": status, "detail": detail, **numbers})


def check(name: str, ok: bool, detail: str, **numbers: Any) -> None:
    record(name, "ok" if ok else "FAIL", detail, **numbers)


def guarded(name: str, run: Callable[[], None]) -> None:
    """Run one check; a crash is recorded as its failure (with the error's last line) and the next check runs."""
    started = time.perf_counter()
    try:
        run()
    except Exception as error:  # any failure of one check must not stop the others
        trace = traceback.format_exc().strip().splitlines()
        record(name, "FAIL", f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''} "
                             f"[{trace[-3].strip() if len(trace) > 2 else ''}]")
    finally:
        free_gpu()
        print(f"     ({name}: {time.perf_counter() - started:.1f} s)", flush=True)


def free_gpu() -> None:
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def synchronize() -> None:
    import torch

    if DEVICE.startswith("cuda"):
        torch.cuda.synchronize()


# 1. generation and log-likelihoods -------------------------------------------------------------------------------

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
    same32_texts, _, dev32_s = outputs(model, DEVICE, "float32", prompts)
    auto_texts, dtype, auto_s = outputs(model, DEVICE, "auto", prompts)
    expected = "torch.bfloat16" if DEVICE.startswith("cuda") else "torch.float32"
    same32 = sum(a == b for a, b in zip(cpu, same32_texts, strict=True))
    same_auto = sum(a == b for a, b in zip(cpu, auto_texts, strict=True))
    check(f"generation dtype auto on {DEVICE}", dtype == expected, dtype)
    check(f"generation {DEVICE} fp32 = cpu fp32", same32 >= 0.95 * len(cpu),
          f"{same32}/{len(cpu)} outputs identical ({cpu_s:.1f} s cpu, {dev32_s:.1f} s {DEVICE} fp32)")
    check(f"generation {DEVICE} dtype auto runs", all(isinstance(t, str) for t in auto_texts),
          f"{same_auto}/{len(cpu)} outputs identical to cpu fp32 ({auto_s:.1f} s)")
    ref = logprobs(model, "cpu", "float32", pairs)
    for dtype_name, tolerance in (("float32", 1e-3), ("auto", 0.5)):
        got = logprobs(model, DEVICE, dtype_name, pairs)
        worst = max(abs(a - b) for a, b in zip(ref, got, strict=True))
        check(f"log-likelihoods {DEVICE} {dtype_name} vs cpu fp32", worst <= tolerance,
              f"{len(pairs)} pairs, largest difference {worst:.2e} nats", largest_difference=worst)


# 2. --device auto ------------------------------------------------------------------------------------------------

def check_device_auto(model: Path) -> None:
    import torch

    from evaltune.harness.backends.base import BackendError
    from evaltune.harness.backends.devices import place

    cpu = HFBackend(HFConfig(str(model), device="cpu", dtype="float32", threads=4))
    auto = HFBackend(HFConfig(str(model), device="auto", threads=4))
    settings = GenerationSettings(max_new_tokens=8)
    text = auto.generate([GenerationRequest("The capital of France is", settings)])[0].text
    if not DEVICE.startswith("cuda"):
        check("device auto without CUDA is the CPU", auto.device == "cpu" and auto.fingerprint == cpu.fingerprint,
              f"placed on {auto.device}, fingerprint {'equal to' if auto.fingerprint == cpu.fingerprint else 'not'} "
              "the cpu float32 one")
        return
    spread = getattr(auto.model, "hf_device_map", None)
    check("device auto is accelerate's device_map", auto.placement.device_map == "auto" and spread is not None,
          f"{torch.cuda.device_count()} GPU(s), hf_device_map over {sorted(set(map(str, (spread or {}).values())))}, "
          f"inputs on {auto.model.device}, {auto.dtype}; generated {text[:30]!r}")
    check("device kind in the fingerprint", auto.fingerprint != cpu.fingerprint,
          "the cuda fingerprint differs from the cpu one")
    try:
        place(f"cuda:{torch.cuda.device_count()}", "auto")
        check("a GPU index past the last is refused", False, "accepted")
    except BackendError as error:
        check("a GPU index past the last is refused", "this machine has" in str(error), str(error))
    check("bfloat16 accepted on this GPU", place("cuda", "bfloat16").dtype == torch.bfloat16,
          f"{torch.cuda.get_device_name()} compute capability {torch.cuda.get_device_capability()}")


# 3. decoding speed ------------------------------------------------------------------------------------------------

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


def check_speed(rows: int, new_tokens: int) -> None:
    import torch

    from evaltune.harness.backends.hf_decode import DecodeLimits, decode

    batch = min(128, rows)
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

    for name, run in (("our decoding loop", ours), ("model.generate", bare)):
        run()  # warm-up: kernels, allocator
        synchronize()
        started = time.perf_counter()
        counts = [run() for _ in range(2)]
        synchronize()
        seconds = (time.perf_counter() - started) / 2
        check(f"speed {name}, SmolLM2-135M shape bf16, batch {batch}", counts == [rows * new_tokens] * 2,
              f"{counts[0]} tokens in {seconds:.2f} s (mean of 2) = {counts[0] / seconds:,.0f} tok/s",
              tokens_per_s=counts[0] / seconds)


# 4. throughput: evaltune hf vs lm-eval hf vs vllm ----------------------------------------------------------------

def build_throughput_model(folder: Path) -> tuple[Path, int]:
    """A random Llama of the 1B shape (the CPU stand-in off a GPU) in bfloat16 with the tests' tokenizer, saved to
    ``folder``; (folder, parameters). The embedding rows the tokenizer never produces, and its special tokens
    (end of sequence among them), are zeroed: with tied embeddings their logits are 0, below the largest random
    logit, so greedy outputs decode to text and every output runs to its limit."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.fixtures.tiny_model import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    shape = LLAMA_1B if DEVICE.startswith("cuda") else CPU_STAND_IN
    config = LlamaConfig(**shape, max_position_embeddings=2048, tie_word_embeddings=True, rope_theta=500000.0,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    with torch.device(DEVICE):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    with torch.no_grad():
        embeddings = model.get_input_embeddings().weight
        embeddings[len(tokenizer):] = 0
        for special in tokenizer.all_special_ids:
            embeddings[special] = 0
    parameters = sum(p.numel() for p in model.parameters())
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    return folder, parameters


def throughput_prompts(count: int) -> list[str]:
    words = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "near", "river", "bank", "while",
             "models", "predict", "tokens"]
    return [" ".join(words[(i + k) % len(words)] for k in range(40 + i % 40)) for i in range(count)]


def roofline(parameters: int, batch: int) -> float | None:
    """Peak decoding tokens/s at ``batch`` on this GPU (module docstring), None off a known GPU."""
    import torch

    if not DEVICE.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name()
    for key, bandwidth, flops in GPU_PEAKS:
        if key in name:
            step = max(parameters * 2 / bandwidth, 2 * parameters * batch / flops)
            return batch / step
    return None


def report_throughput(engine: str, batch: int, tokens: int, seconds: float, parameters: int) -> None:
    rate = tokens / seconds
    peak = roofline(parameters, batch)
    share = f", {100 * rate / peak:.1f}% of the {peak:,.0f} tok/s roofline" if peak else ", no peak known here"
    shape = "1B Llama shape" if DEVICE.startswith("cuda") else "CPU stand-in shape, not the 1B"
    check(f"throughput {engine} batch {batch}", tokens > 0, f"{tokens} tokens in {seconds:.2f} s = {rate:,.0f} tok/s"
          f"{share} ({parameters / 1e6:,.0f} M parameters, {shape})", tokens_per_s=rate, peak_tokens_per_s=peak,
          share_of_peak=rate / peak if peak else None)


def workloads() -> list[tuple[int, int, int]]:
    """(batch, prompts, new tokens) for the small-batch and the large-batch measurement."""
    return [(1, 4, 128), (256, 256, 128)] if DEVICE.startswith("cuda") else [(1, 2, 16), (16, 16, 16)]


def throughput_evaltune(folder: Path, parameters: int) -> None:
    backend = HFBackend(HFConfig(str(folder), device=DEVICE, dtype="bfloat16", threads=4))
    for batch, count, new_tokens in workloads():
        settings = GenerationSettings(max_new_tokens=new_tokens, batch_size=batch)
        requests = [GenerationRequest(p, settings) for p in throughput_prompts(count)]
        backend.generate(requests[:batch])  # warm-up
        synchronize()
        started = time.perf_counter()
        done = backend.generate(requests)
        synchronize()
        report_throughput("evaltune hf", batch, sum(c.completion_tokens for c in done), time.perf_counter() - started,
                          parameters)
    backend.close()


def throughput_lm_eval(folder: Path, parameters: int) -> None:
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    for batch, count, new_tokens in workloads():
        lm = HFLM(pretrained=str(folder), dtype="bfloat16", device=DEVICE, batch_size=batch)
        arguments = {"until": [], "max_gen_toks": new_tokens, "do_sample": False}
        requests = [Instance("generate_until", {}, (p, arguments), i) for i, p in enumerate(throughput_prompts(count))]
        lm.generate_until(requests[:batch], disable_tqdm=True)  # warm-up
        synchronize()
        started = time.perf_counter()
        lm.generate_until(requests, disable_tqdm=True)
        synchronize()
        # Counted as full length: end of sequence cannot win (its logit is 0, below the largest random one).
        report_throughput("lm-eval hf", batch, count * new_tokens, time.perf_counter() - started, parameters)
        del lm
        free_gpu()


def throughput_vllm(folder: Path, parameters: int) -> None:
    """In a process of its own: vLLM takes most of the GPU's memory and keeps engine processes."""
    if not vllm_runnable("throughput vllm"):
        return
    done = subprocess.run([sys.executable, __file__, "--vllm-throughput", str(folder)], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        record("throughput vllm", "FAIL", f"exit {done.returncode}: {(done.stderr or done.stdout).strip()[-300:]}")
        return
    for line in lines:
        row = json.loads(line)
        report_throughput("evaltune vllm", row["batch"], row["tokens"], row["seconds"], parameters)


def measure_vllm(folder: str) -> None:
    """The child of ``throughput_vllm``: one JSON line per workload."""
    from evaltune.harness.backends.registry import LoadOptions
    from evaltune.harness.backends.vllm import VLLMBackend

    backend = VLLMBackend(folder, LoadOptions(dtype="bfloat16", device="cuda"))
    for batch, count, new_tokens in workloads():
        settings = GenerationSettings(max_new_tokens=new_tokens, batch_size=batch)
        requests = [GenerationRequest(p, settings) for p in throughput_prompts(count)]
        backend.generate(requests[:batch])  # warm-up
        tokens, started = 0, time.perf_counter()
        for start in range(0, count, batch):  # batch 1 one request at a time, as the other engines ran it
            tokens += sum(c.completion_tokens for c in backend.generate(requests[start : start + batch]))
        print(json.dumps({"batch": batch, "tokens": tokens, "seconds": time.perf_counter() - started}), flush=True)
    backend.close()


def vllm_runnable(name: str) -> bool:
    import importlib.util

    if not DEVICE.startswith("cuda"):
        record(name, "skip", "vLLM runs on CUDA GPUs only")
        return False
    if importlib.util.find_spec("vllm") is None:
        record(name, "skip", "vllm is not installed here (pip install 'evaltune[vllm]')")
        return False
    return True


# 5. the vllm: backend against hf ---------------------------------------------------------------------------------

def check_vllm_backend() -> None:
    if not vllm_runnable("vllm backend = hf (greedy, log-likelihoods)"):
        return
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                           "tests/test_vllm_backend.py"], capture_output=True, text=True, timeout=300, cwd=ROOT)
    tail = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr.strip()[-200:]
    check("vllm backend = hf (greedy, log-likelihoods)", done.returncode == 0 and "skipped" not in tail, tail)


# 6. retune --------------------------------------------------------------------------------------------------------

def preference_rows() -> list[dict[str, Any]]:
    system = {"role": "system", "content": "Answer briefly."}
    return [{"prompt": [system, {"role": "user", "content": f"Who founded town {i}?"}],
             "chosen": [{"role": "assistant", "content": "I don't know."}],
             "rejected": [{"role": "assistant", "content": f"It was founded by King {i}."}]} for i in range(32)]


def check_retune(model: Path, scratch: Path, qlora: bool) -> None:
    import importlib.util

    from safetensors.torch import load_file

    from evaltune.retune.config import DpoConfig
    from evaltune.retune.train import precision, train

    name = "retune DPO QLoRA (4-bit base)" if qlora else "retune DPO LoRA"
    if qlora and not DEVICE.startswith("cuda"):
        record(name, "skip", "QLoRA needs a CUDA GPU (bitsandbytes' 4-bit layers)")
        return
    if qlora and importlib.util.find_spec("bitsandbytes") is None:
        record(name, "skip", "bitsandbytes is not installed here (pip install 'evaltune[qlora]')")
        return
    config = DpoConfig(epochs=2, batch_size=8, qlora=qlora, device="cuda" if DEVICE.startswith("cuda") else "cpu")
    lines: list[str] = []
    started = time.perf_counter()
    result = train(str(model), preference_rows(), config, scratch, log=lines.append)
    seconds = time.perf_counter() - started
    losses = [entry["loss"] for entry in result.history if "loss" in entry]
    check(f"{name} on {DEVICE} in {precision(config)}", len(losses) > 1 and losses[-1] < losses[0],
          f"{len(losses)} steps in {seconds:.1f} s, loss {losses[0]:.3f} -> {losses[-1]:.3f}" if losses else "no loss")
    weights = load_file(str(result.adapter_dir / "adapter_model.safetensors"))
    moved = [k for k, v in weights.items() if "lora_B" in k and v.abs().max().item() > 0]
    check(f"{name}: LoRA B weights trained", bool(moved),
          f"{len(moved)} lora_B tensors non-zero, dtype {next(iter(weights.values())).dtype}")
    backend = HFBackend(HFConfig(str(model), adapter=str(result.adapter_dir), device=DEVICE))
    settings = GenerationSettings(max_new_tokens=16)
    text = backend.generate([GenerationRequest(backend.render("Who founded town 3?", settings), settings)])[0].text
    check(f"{name}: adapter generates on {DEVICE}", isinstance(text, str), f"{backend.dtype}: {text[:60]!r}")


# ------------------------------------------------------------------------------------------------------------------

def write_results(started: float) -> None:
    import torch

    out = os.environ.get("OUT")
    if not out:
        return
    summary = {"device": torch.cuda.get_device_name() if DEVICE.startswith("cuda") else "cpu",
               "torch": torch.__version__, "seconds": time.perf_counter() - started, "checks": RESULTS}
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "gpu_check.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    import argparse

    import torch

    from tests.fixtures.tiny_model import build_tiny_model

    global DEVICE
    quiet_third_party_progress()  # one line per check: no per-load progress bars
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (the point), or cpu to try the script itself")
    parser.add_argument("--vllm-throughput", metavar="FOLDER", help=argparse.SUPPRESS)  # the vllm child process
    args = parser.parse_args(argv)
    DEVICE = args.device
    if args.vllm_throughput:
        measure_vllm(args.vllm_throughput)
        return 0
    if DEVICE.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA GPU here: this script checks the GPU path (--device cpu tries it on the CPU)")
        return 2
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    started = time.perf_counter()
    name = torch.cuda.get_device_name() if DEVICE.startswith("cuda") else "cpu"
    print(f"{name}, torch {torch.__version__}", flush=True)
    on_gpu = DEVICE.startswith("cuda")
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_model(Path(tmp) / "tiny")
        guarded("generation", lambda: check_generation(model))
        guarded("device auto", lambda: check_device_auto(model))
        guarded("decoding speed", lambda: check_speed(rows=256 if on_gpu else 8, new_tokens=64 if on_gpu else 16))
        big: list[tuple[Path, int]] = []
        guarded("throughput model", lambda: big.append(build_throughput_model(Path(tmp) / "llama")))
        if big:
            guarded("throughput evaltune hf", lambda: throughput_evaltune(*big[0]))
            guarded("throughput lm-eval hf", lambda: throughput_lm_eval(*big[0]))
            guarded("throughput vllm", lambda: throughput_vllm(*big[0]))
        guarded("vllm backend", check_vllm_backend)
        guarded("retune", lambda: check_retune(model, Path(tmp) / "retune", qlora=False))
        guarded("retune qlora", lambda: check_retune(model, Path(tmp) / "qlora", qlora=True))
    failed = [r["check"] for r in RESULTS if r["status"] == "FAIL"]
    print(f"{len(failed)} failed" + (f": {', '.join(failed)}" if failed else "") +
          f" ({time.perf_counter() - started:.0f} s)")
    write_results(started)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
