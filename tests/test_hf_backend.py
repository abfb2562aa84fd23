"""The hf backend on a tiny real Llama: batching, stops, seeded sampling, log-likelihoods, adapters, errors."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import torch

from evaltune.harness.backends.base import BackendError, GenerationRequest, LoglikelihoodRequest
from evaltune.harness.backends.hf import HFBackend, HFConfig, adapter_sha256
from evaltune.harness.backends.hf_loglikelihood import encode_pair
from evaltune.harness.suite import GenerationSettings, Message

PROMPTS = [
    "The capital of France is",
    "Hi",
    "Question: What is two plus two? Answer:",
    "A quick brown fox jumps over the lazy dog near the river bank and then",
    "x",
    "Water boils at",
]
PLAIN = GenerationSettings(max_new_tokens=12, chat="never", batch_size=4)


@pytest.fixture(scope="module")
def backend(tiny_model_dir: Path) -> HFBackend:
    return HFBackend(HFConfig(str(tiny_model_dir), threads=1, max_batch_size=8))


@pytest.fixture(scope="module")
def adapted(tiny_model_dir: Path, tiny_adapter_dir: Path) -> HFBackend:
    return HFBackend(HFConfig(str(tiny_model_dir), adapter=str(tiny_adapter_dir), threads=1))


def _requests(settings: GenerationSettings, seed: int = 0) -> list[GenerationRequest]:
    return [GenerationRequest(p, settings, seed + i) for i, p in enumerate(PROMPTS)]


def test_batched_greedy_equals_one_at_a_time(backend: HFBackend) -> None:
    batched = backend.generate(_requests(PLAIN))
    single = [backend.generate([r])[0] for r in _requests(PLAIN)]
    assert [c.text for c in batched] == [c.text for c in single]
    assert [c.completion_tokens for c in batched] == [c.completion_tokens for c in single]
    assert [c.prompt_tokens for c in batched] == [len(backend.tokenizer(p)["input_ids"]) for p in PROMPTS]
    assert all(c.latency_s > 0 and c.finish_reason in ("stop", "length") for c in batched)


def test_greedy_equals_transformers_generate_when_rows_end_early(backend: HFBackend) -> None:
    """The decoding loop drops finished rows from the batch; the tokens must still be generate()'s."""
    model, tokenizer = backend.model, backend.tokenizer
    plain = backend.generate(_requests(PLAIN))
    # An "EOS" that some rows produce early and others never: rows then finish at different steps.
    first_tokens = [tokenizer(c.text, add_special_tokens=False)["input_ids"][:3] for c in plain]
    early_eos = next(t[2] for t in first_tokens if len(t) == 3)
    saved = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = early_eos
    try:
        ours = backend.generate(_requests(PLAIN))
        ids = tokenizer(PROMPTS, padding=True, add_special_tokens=False, return_tensors="pt")
        bare = model.generate(**ids, max_new_tokens=PLAIN.max_new_tokens, do_sample=False, eos_token_id=early_eos,
                              pad_token_id=tokenizer.pad_token_id)
    finally:
        model.generation_config.eos_token_id = saved
    width = ids["input_ids"].shape[1]
    for completion, row in zip(ours, bare[:, width:].tolist(), strict=True):
        used = row[: row.index(early_eos) + 1] if early_eos in row else row
        assert completion.completion_tokens == len(used)
        assert completion.text == tokenizer.decode([t for t in used if t != early_eos], skip_special_tokens=True)
    assert len({c.completion_tokens for c in ours}) > 1  # rows did end at different steps


def test_shared_system_prompt_is_computed_once_and_changes_nothing(backend: HFBackend) -> None:
    """Chat prompts with one system prompt share their first tokens: prefill runs them once for the batch."""
    from evaltune.harness.backends.hf_prefill import MIN_SHARED, shared_prefix

    system = "You are a careful assistant. Answer briefly, in a few words, and say so when you do not know."
    settings = GenerationSettings(max_new_tokens=12, chat="auto", system_prompt=system, batch_size=8)
    requests = _requests(settings)
    rendered = [backend.render(r.prompt, settings) for r in requests]
    assert shared_prefix([backend.tokenizer(str(t), add_special_tokens=False)["input_ids"] for t in rendered]) >= (
        MIN_SHARED)
    batched = backend.generate(requests)
    single = [backend.generate([r])[0] for r in requests]
    assert [(c.text, c.completion_tokens) for c in batched] == [(c.text, c.completion_tokens) for c in single]


def test_stop_sequence_truncates_output(backend: HFBackend) -> None:
    full = backend.generate([GenerationRequest(PROMPTS[0], PLAIN)])[0]
    assert full.finish_reason == "length" and full.completion_tokens == PLAIN.max_new_tokens
    # A stop string taken from the middle of the unstopped output: generation must end there.
    start = len(full.text) // 2
    stop = next(full.text[i : i + 2] for i in range(start, len(full.text)) if full.text[i : i + 2].isprintable())
    settings = GenerationSettings(max_new_tokens=12, chat="never", stop=("@@never@@", stop))
    cut = backend.generate([GenerationRequest(PROMPTS[0], settings)])[0]
    assert cut.text == full.text[: full.text.find(stop)]
    assert cut.finish_reason == "stop"
    assert cut.completion_tokens < full.completion_tokens


def test_sampling_is_seeded_per_request(backend: HFBackend) -> None:
    settings = GenerationSettings(max_new_tokens=10, temperature=1.0, top_p=0.95, chat="never", batch_size=8)
    first = [c.text for c in backend.generate(_requests(settings, seed=7))]
    again = [c.text for c in backend.generate(_requests(settings, seed=7))]
    shuffled = backend.generate(_requests(settings, seed=7)[::-1])[::-1]
    alone = [backend.generate([r])[0].text for r in _requests(settings, seed=7)[:2]]
    other = [c.text for c in backend.generate(_requests(settings, seed=1000))]
    greedy = [c.text for c in backend.generate(_requests(PLAIN))]
    assert first == again == [c.text for c in shuffled]  # batch order does not matter
    assert first[:2] == alone  # nor batch company
    assert first != other and first != greedy


def test_chat_rendering(backend: HFBackend) -> None:
    templated = backend.render("Hello", GenerationSettings(chat="auto", system_prompt="Be brief."))
    assert (
        templated
        == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"
    )
    assert backend.render("Hello", GenerationSettings(chat="never")) == "Hello"
    messages = (Message("user", "Hello"),)
    assert backend.render(messages, GenerationSettings(chat="never")).endswith("<|im_start|>assistant\n")  # type: ignore[union-attr]
    # Messages reach generate unrendered too: the backend applies the template itself.
    from_messages = backend.generate([GenerationRequest(messages, PLAIN)])[0]
    from_text = backend.generate([GenerationRequest(str(backend.render(messages, PLAIN)), PLAIN)])[0]
    assert from_messages.text == from_text.text


def test_messages_without_chat_template_fail_clearly(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(tiny_model_dir, tmp_path / "no_template")
    (folder / "chat_template.jinja").unlink()
    plain = HFBackend(HFConfig(str(folder), threads=1))
    assert (plain.accepts.text, plain.accepts.chat) == (True, False)
    assert plain.render("Hello", GenerationSettings(chat="auto")) == "Hello"
    with pytest.raises(BackendError, match=rf"item 'prompt' is chat messages, but the tokenizer of {folder} has no"):
        plain.render((Message("user", "Hello"),), GenerationSettings())
    with pytest.raises(BackendError, match="has no chat template, so it cannot take chat messages"):
        plain.generate([GenerationRequest((Message("user", "Hello"),), PLAIN)])  # unrendered messages, too


def _direct_loglikelihood(backend: HFBackend, context: str, continuation: str) -> tuple[float, bool]:
    """The reference: one plain forward pass over context + continuation, no cache, no batching."""
    return _direct_from_ids(backend, *encode_pair(backend.tokenizer, context, continuation))


def _direct_from_ids(backend: HFBackend, context_ids: list[int], continuation_ids: list[int]) -> tuple[float, bool]:
    with torch.no_grad():
        logits = backend.model(torch.tensor([context_ids + continuation_ids])).logits[0]
    logprobs = torch.log_softmax(logits.float(), dim=-1)[len(context_ids) - 1 : -1]
    targets = torch.tensor(continuation_ids)
    total = float(logprobs.gather(1, targets[:, None]).sum())
    return total, bool((logprobs.argmax(-1) == targets).all())


def _greedy_continuation(backend: HFBackend, context: str) -> str:
    ids = backend.tokenizer(context, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        best = int(backend.model(torch.tensor([ids])).logits[0, -1].argmax())
    return str(backend.tokenizer.decode([best]))


def test_loglikelihood_matches_a_full_forward_pass(backend: HFBackend) -> None:
    context = "The capital of France is"
    requests = [
        LoglikelihoodRequest(context, " Paris"),
        LoglikelihoodRequest(context, " Rome, and then a much longer continuation"),
        LoglikelihoodRequest(context + " ", "Paris"),  # trailing space moves to the continuation
        LoglikelihoodRequest("Question: two plus two? Answer:", " four"),
        LoglikelihoodRequest("", "hello world"),  # empty context: scored after the BOS token
        LoglikelihoodRequest(context, _greedy_continuation(backend, context)),
    ]
    results = backend.loglikelihood(requests)
    for request, result in zip(requests, results, strict=True):
        expected, greedy = _direct_loglikelihood(backend, request.context, request.continuation)
        assert result.logprob == pytest.approx(expected, abs=1e-4)
        assert result.is_greedy == greedy
        assert result.tokens == len(encode_pair(backend.tokenizer, request.context, request.continuation)[1])
    assert results[0].logprob == pytest.approx(results[2].logprob, abs=1e-5)
    assert results[-1].is_greedy and not results[1].is_greedy


def test_overlong_context_keeps_its_last_tokens(backend: HFBackend) -> None:
    window = backend.model.config.max_position_embeddings
    context = "The moon orbits the earth and the earth orbits the sun. " * 60
    context_ids, continuation_ids = encode_pair(backend.tokenizer, context, " Paris")
    assert len(context_ids) > window
    [result] = backend.loglikelihood([LoglikelihoodRequest(context, " Paris")])
    kept = context_ids[-(window + 1 - len(continuation_ids)) :]  # lm-eval: at most `window` input positions
    assert result.logprob == pytest.approx(_direct_from_ids(backend, kept, continuation_ids)[0], abs=1e-4)


def test_shared_context_batching_equals_one_at_a_time(tiny_model_dir: Path, backend: HFBackend) -> None:
    contexts = ["The moon orbits", "Question: What is the capital of Italy? Answer:", "A"]
    choices = [" the earth", " Rome", " the sun and the stars", " 4", ""]
    requests = [LoglikelihoodRequest(c, x) for c in contexts for x in choices]
    batched = backend.loglikelihood(requests)
    narrow = HFBackend(HFConfig(str(tiny_model_dir), threads=1, max_batch_size=1))
    single = [narrow.loglikelihood([r])[0] for r in requests]
    for a, b in zip(batched, single, strict=True):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-4)
        assert (a.is_greedy, a.tokens) == (b.is_greedy, b.tokens)
    assert batched[4].logprob == 0.0 and batched[4].tokens == 0


def test_adapter_changes_outputs_and_fingerprint(
    backend: HFBackend, adapted: HFBackend, tiny_adapter_dir: Path
) -> None:
    base_out = [c.text for c in backend.generate(_requests(PLAIN))]
    adapted_out = [c.text for c in adapted.generate(_requests(PLAIN))]
    assert base_out != adapted_out
    request = [LoglikelihoodRequest("The capital of France is", " Paris")]
    assert backend.loglikelihood(request)[0].logprob != pytest.approx(adapted.loglikelihood(request)[0].logprob)
    assert backend.fingerprint != adapted.fingerprint
    assert len(adapter_sha256(tiny_adapter_dir)) == 64


def test_fingerprint_is_stable_and_tracks_weights_and_dtype(
    tiny_model_dir: Path, backend: HFBackend, tmp_path: Path
) -> None:
    assert HFBackend(HFConfig(str(tiny_model_dir), threads=1)).fingerprint == backend.fingerprint
    assert HFBackend(HFConfig(str(tiny_model_dir), dtype="bfloat16", threads=1)).fingerprint != backend.fingerprint
    copy = shutil.copytree(tiny_model_dir, tmp_path / "copy")
    assert HFBackend(HFConfig(str(copy), threads=1)).fingerprint == backend.fingerprint  # content, not path
    (copy / "generation_config.json").write_text('{"eos_token_id": 0}')
    assert HFBackend(HFConfig(str(copy), threads=1)).fingerprint != backend.fingerprint


def test_missing_folder_names_the_path_and_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "model"
    with pytest.raises(BackendError, match=r"no folder at .*nope/model.*pass a local model folder"):
        HFBackend(HFConfig(str(missing)))
    with pytest.raises(BackendError, match=r"has no config\.json"):
        HFBackend(HFConfig(str(tmp_path)))


def test_uncached_hub_id_fails_fast_offline() -> None:
    started = time.perf_counter()
    with pytest.raises(BackendError, match="EVALTUNE_ONLINE=1"):
        HFBackend(HFConfig("evaltune-test/not-a-model"))
    assert time.perf_counter() - started < 10


def test_bad_adapter_errors(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="no PEFT adapter at"):
        HFBackend(HFConfig(str(tiny_model_dir), adapter=str(tmp_path / "missing")))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "adapter_config.json").write_text('{"peft_type": "LORA", "target_modules": ["no_such_layer"]}')
    with pytest.raises(BackendError, match="cannot apply the adapter"):
        HFBackend(HFConfig(str(tiny_model_dir), adapter=str(broken)))


def test_config_is_checked() -> None:
    with pytest.raises(BackendError, match="dtype 'float8'"):
        HFConfig("x", dtype="float8")
    with pytest.raises(BackendError, match="device 'tpu'"):
        HFConfig("x", device="tpu")


def test_few_shot_primer_runs_once_and_scores_the_same(backend: HFBackend) -> None:
    """Contexts that share a long primer: the primer's cache is computed once and reused for every row."""
    primer = "Q: What is the capital of Spain?\nA: Madrid.\n\nQ: What colour is the sky?\nA: Blue.\n\n" * 2
    questions = ["Q: Who wrote Hamlet?\nA:", "Q: What is ice?\nA:", "Q: Two plus two?\nA:"]
    choices = [" Shakespeare.", " Frozen water, mostly.", " Four.", " Four."]  # the repeat is computed once
    requests = [LoglikelihoodRequest(primer + q, x) for q in questions for x in choices]
    assert len(encode_pair(backend.tokenizer, primer, " x")[0]) >= 32  # long enough to be shared
    results = backend.loglikelihood(requests)
    for request, result in zip(requests, results, strict=True):
        expected, greedy = _direct_loglikelihood(backend, request.context, request.continuation)
        assert result.logprob == pytest.approx(expected, abs=1e-4)
        assert result.is_greedy == greedy


def test_batch_rows_follow_free_memory(backend: HFBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    from evaltune.harness.backends import hf_memory

    per_row = hf_memory.row_bytes(backend.model)
    monkeypatch.setattr(hf_memory, "_free_bytes", lambda device: 40 * per_row)
    assert hf_memory.batch_rows_for_memory(backend.model, "cpu") == 10  # a quarter of free memory
    monkeypatch.setattr(hf_memory, "_free_bytes", lambda device: 10**15)
    assert hf_memory.batch_rows_for_memory(backend.model, "cpu") == hf_memory.CPU_CAP
    monkeypatch.setattr(hf_memory, "_free_bytes", lambda device: 0)
    assert hf_memory.batch_rows_for_memory(backend.model, "cpu") == 1


def test_short_rows_fit_more_of_them(backend: HFBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    """A generation batch is sized for its own longest prompt plus the new tokens, not for a long context."""
    from evaltune.harness.backends import hf_memory

    monkeypatch.setattr(hf_memory, "_free_bytes", lambda device: 4 * hf_memory.row_bytes(backend.model, 64) * 20)
    by_memory = HFBackend.__new__(HFBackend)  # the fixture's backend sets max_batch_size; this one does not
    by_memory.model, by_memory.device = backend.model, "cpu"
    by_memory.config = HFConfig(backend.config.model)
    assert by_memory.rows_for(64) == 20
    assert by_memory.rows_for(32) > 20
    assert by_memory.rows_for(128) < 20
    assert backend.rows_for(32) == backend.config.max_batch_size  # a batch size the user set wins
