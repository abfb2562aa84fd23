"""The ``vllm:`` backend: a local model folder (or hub id) served in this process by vLLM's offline engine.

    evaltune run big.yaml --model vllm:./llama-70b --tensor-parallel 4

vLLM is an optional extra (``pip install 'evaltune[vllm]'``, a CUDA GPU needed), imported only when such a model
loads. The model reads exactly what the ``hf`` backend's model reads: the same tokenizer and chat template render
a prompt, the same token ids go in (``TokensPrompt``), the same end-of-sequence tokens stop it, and
log-likelihoods follow lm-eval's vLLM model (``prompt_logprobs=1`` over context + continuation, tokenized by
lm-eval's rules). Greedy outputs therefore match the ``hf`` backend's within the precision of the dtype; sampled
outputs come from vLLM's own sampler, so they differ from hf's (the fingerprint names the engine, so the two never
share cached outputs).

Parallelism: ``--tensor-parallel N`` splits one copy over N GPUs (vLLM's ``tensor_parallel_size``). vLLM refuses
``data_parallel_size`` above 1 in a single process (it may hang; vLLM PR 27282), so copies of the model are
processes: ``torchrun --nproc-per-node N -m evaltune run ... --model vllm:...`` (or ``accelerate launch``); each
process takes its share of the items and starts its own engine on its own GPUs (those numbered LOCAL_RANK x TP to
LOCAL_RANK x TP + TP - 1), as lm-eval's Ray replicas each see only their GPUs.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evaltune.harness.backends.base import (
    Accepts,
    BackendError,
    Completion,
    GenerationRequest,
    Loglikelihood,
    LoglikelihoodRequest,
    OutputsDone,
    Prompt,
)
from evaltune.harness.backends.registry import LoadOptions
from evaltune.harness.distributed import Launch
from evaltune.harness.suite import GenerationSettings

INSTALL = "vllm is not installed: pip install 'evaltune[vllm]' (needs a CUDA GPU)"


def check_options(options: LoadOptions, launch: Launch) -> None:
    """Refuse, before vllm is even imported, what no machine could run: the CPU, several copies in one process, a
    data-parallel size other than the launch's, one named GPU for a model split over several. The message names
    the option and the fix."""
    tp, device = options.tensor_parallel, options.device
    if device == "cpu":
        raise BackendError("--model vllm: runs on CUDA GPUs, not --device cpu; drop the vllm: prefix to use the "
                           "hf backend on the CPU")
    if options.data_parallel > 1 and launch.world_size == 1:
        raise BackendError(
            f"--data-parallel {options.data_parallel} with vllm: means {options.data_parallel} processes, one engine "
            "each (vLLM refuses several copies in one process): torchrun --nproc-per-node "
            f"{options.data_parallel} -m evaltune run ... (or accelerate launch), without --data-parallel")
    if launch.world_size > 1 and options.data_parallel not in (1, launch.world_size):
        raise BackendError(f"--data-parallel {options.data_parallel} does not match the {launch.world_size} "
                           "launched processes: each process is one copy; leave --data-parallel out")
    if device.startswith("cuda:") and tp > 1:
        raise BackendError(f"--device {device} names one GPU, but --tensor-parallel {tp} needs {tp}: use "
                           "--device auto (or cuda) and CUDA_VISIBLE_DEVICES to choose the GPUs")


def engine_gpus(options: LoadOptions, gpu_count: int, launch: Launch) -> list[int]:
    """The GPUs (by index on this machine) one engine uses, after ``check_options``. Raises ``BackendError`` when
    this machine has too few."""
    check_options(options, launch)
    tp, device = options.tensor_parallel, options.device
    if device.startswith("cuda:"):
        wanted = [int(device.partition(":")[2])]
    else:
        first = launch.local_rank * tp if launch.parallel else 0
        wanted = list(range(first, first + tp))
    if gpu_count == 0:
        raise BackendError("--model vllm: needs a CUDA GPU and torch sees none here; drop the vllm: prefix to "
                           "use the hf backend")
    if wanted[-1] >= gpu_count:
        per = f" ({launch.world_size} processes x {tp})" if launch.world_size > 1 else ""
        raise BackendError(f"--model vllm: needs GPUs {wanted[0]} to {wanted[-1]}{per}, but this machine has "
                           f"{gpu_count}; lower --tensor-parallel or the number of processes")
    return wanted


def engine_kwargs(location: str, options: LoadOptions, dtype: str) -> dict[str, Any]:
    """The keyword arguments of ``vllm.LLM`` for a model at ``location`` loaded with ``options`` (``dtype`` already
    resolved for the GPU: bfloat16, float16 or float32)."""
    kwargs: dict[str, Any] = {
        "model": location,
        "tokenizer": location,
        "dtype": dtype,
        "tensor_parallel_size": options.tensor_parallel,
        "seed": 0,  # sampled outputs take each request's own seed; this one only sets the engine's default
        "trust_remote_code": False,
    }
    if options.max_batch_size:
        kwargs["max_num_seqs"] = options.max_batch_size
    return kwargs


def sampling_kwargs(settings: GenerationSettings, seed: int, stop_token_ids: Sequence[int]) -> dict[str, Any]:
    """The keyword arguments of ``vllm.SamplingParams`` for one output under ``settings``."""
    kwargs: dict[str, Any] = {
        "n": 1,
        "max_tokens": settings.max_new_tokens,
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "stop": list(settings.stop) or None,
        "stop_token_ids": list(stop_token_ids),
        "skip_special_tokens": True,  # as the hf backend decodes
    }
    if not settings.greedy:
        kwargs["seed"] = seed
    return kwargs


def fit_to_length(context: list[int], continuation: list[int], max_model_len: int) -> tuple[list[int], int]:
    """(input ids, context length) as lm-eval's vLLM model cuts a request that is too long: the oldest tokens go,
    keeping room for the one token vLLM must generate."""
    limit = max_model_len - 1
    whole = (context + continuation)[-limit:]
    context_length = len(context) - max(0, len(context) + len(continuation) - limit)
    return whole, context_length


def continuation_logprob(tokens: Sequence[int], prompt_logprobs: Sequence[Any], context_length: int
                         ) -> tuple[float, bool]:
    """(sum of the continuation tokens' log-probabilities, every one of them the most likely token) from vLLM's
    ``prompt_logprobs``, as lm-eval's ``_parse_logprobs`` reads them (position 0 is None: nothing before it)."""
    total, greedy = 0.0, True
    for token, candidates in zip(tokens[context_length:], prompt_logprobs[context_length:], strict=True):
        values = {t: float(getattr(lp, "logprob", lp)) for t, lp in candidates.items()}
        total += values[token]
        greedy = greedy and max(values, key=lambda t: values[t]) == token
    return total, greedy


class VLLMBackend:
    """Generation and log-likelihoods on vLLM's offline engine. See ``harness.backends.base.Backend``."""

    def __init__(self, location: str, options: LoadOptions, is_local: bool = True):
        import torch

        from evaltune.harness.backends.devices import place
        from evaltune.harness.backends.hf import load_tokenizer

        self.location, self.is_local, self.options = location, is_local, options
        from evaltune.harness.distributed import current_launch

        launch = current_launch()
        check_options(options, launch)
        vllm = _import_vllm()
        gpus = engine_gpus(options, torch.cuda.device_count() if torch.cuda.is_available() else 0, launch)
        self.dtype = place(f"cuda:{gpus[0]}", options.dtype).dtype_name  # refuses bfloat16 where it is emulated
        _show_only(gpus)
        self.tokenizer = load_tokenizer(location, is_local)  # renders and tokenizes exactly as the hf backend
        self.stop_token_ids = _eos_ids(location, self.tokenizer)
        try:
            self.llm: Any = vllm.LLM(**engine_kwargs(location, options, self.dtype))
        except (OSError, ValueError, RuntimeError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BackendError(f"vLLM could not load {location}: {reason}") from exc
        self.max_model_len = int(self.llm.llm_engine.model_config.max_model_len)
        self._fingerprint = self._compute_fingerprint()

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def accepts(self) -> Accepts:
        return Accepts(text=True, chat=bool(getattr(self.tokenizer, "chat_template", None)),
                       limit=f"the tokenizer of {self.location} has no chat template")

    def model_input(self, prompt: Prompt) -> str:
        from evaltune.harness.backends.hf import text_for_model

        return text_for_model(self.tokenizer, self.location, prompt)

    def render(self, prompt: Prompt, settings: GenerationSettings) -> str:
        """What the model reads for a bare prompt under ``settings`` (as ``HFBackend.render``)."""
        from evaltune.harness.prompts import render_prompt
        from evaltune.harness.suite import Item

        return self.model_input(render_prompt(Item("prompt", prompt), settings, self.accepts))

    def generate(self, requests: Sequence[GenerationRequest],
                 on_output: OutputsDone | None = None) -> list[Completion]:
        """One completion per request, in request order; vLLM batches them continuously."""
        from vllm import SamplingParams

        from evaltune.harness.backends.hf_generate import encode_prompt

        if not requests:
            return []
        ids = [encode_prompt(self.tokenizer, self.model_input(r.prompt)) for r in requests]
        params = [SamplingParams(**sampling_kwargs(r.settings, r.seed, self.stop_token_ids)) for r in requests]
        started = time.perf_counter()
        outputs = self.llm.generate([{"prompt_token_ids": i} for i in ids], params, use_tqdm=False)
        latency = (time.perf_counter() - started) / len(requests)
        if on_output is not None:
            on_output(len(requests))
        return [Completion(out.outputs[0].text, len(prompt), len(out.outputs[0].token_ids), latency,
                           "length" if out.outputs[0].finish_reason == "length" else "stop")
                for prompt, out in zip(ids, outputs, strict=True)]

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[Loglikelihood]:
        """lm-eval-compatible log P(continuation | context); a request asked twice is computed once."""
        from vllm import SamplingParams

        from evaltune.harness.backends.hf_loglikelihood import encode_pair

        if not requests:
            return []
        unique = list(dict.fromkeys((r.context, r.continuation) for r in requests))
        inputs = [fit_to_length(*encode_pair(self.tokenizer, c, x), self.max_model_len) for c, x in unique]
        params = SamplingParams(temperature=0, prompt_logprobs=1, max_tokens=1, detokenize=False)
        outputs = self.llm.generate([{"prompt_token_ids": ids} for ids, _ in inputs], params, use_tqdm=False)
        scored = {}
        for pair, (ids, context_length), out in zip(unique, inputs, outputs, strict=True):
            logprob, greedy = continuation_logprob(ids, out.prompt_logprobs, context_length)
            scored[pair] = Loglikelihood(logprob, greedy, len(ids) - context_length)
        return [scored[(r.context, r.continuation)] for r in requests]

    def close(self) -> None:
        llm, self.llm = self.llm, None
        if llm is not None and hasattr(llm, "shutdown"):
            llm.shutdown()  # newer vLLM; older ones tear the engine down when it is collected
        del llm
        gc.collect()
        import torch

        torch.cuda.empty_cache()

    def _compute_fingerprint(self) -> str:
        from evaltune.harness.backends.hf import folder_digest

        weights: Any = folder_digest(Path(self.location)) if self.is_local else {"hub_id": self.location}
        payload = {"engine": "vllm", "weights": weights, "dtype": self.dtype, "device": "cuda",
                   "tensor_parallel": self.options.tensor_parallel}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise BackendError(INSTALL) from exc
    return vllm


def _show_only(gpus: list[int]) -> None:
    """Let vLLM see only this engine's GPUs: its engine and workers start in processes of their own, which read
    ``CUDA_VISIBLE_DEVICES`` when they start (as lm-eval's Ray replicas do)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    names = visible.split(",") if visible else [str(i) for i in range(max(gpus) + 1)]
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(names[i] for i in gpus)
    for name in ("VLLM_DP_RANK", "VLLM_DP_RANK_LOCAL", "VLLM_DP_SIZE", "VLLM_DP_MASTER_IP", "VLLM_DP_MASTER_PORT"):
        os.environ.pop(name, None)  # one engine per process: no vLLM-side data parallelism


def _eos_ids(location: str, tokenizer: Any) -> list[int]:
    """The tokens that end an output, as the hf backend reads them: the model's generation config, else the
    tokenizer's end-of-sequence token."""
    from transformers import AutoConfig, GenerationConfig

    try:
        config = GenerationConfig.from_pretrained(location)
    except OSError:
        config = GenerationConfig.from_model_config(AutoConfig.from_pretrained(location))
    eos = config.eos_token_id if config.eos_token_id is not None else tokenizer.eos_token_id
    if eos is None:
        return []
    return sorted({int(e) for e in eos}) if isinstance(eos, list | tuple) else [int(eos)]
