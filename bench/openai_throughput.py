"""The openai backend's throughput against a real server: ``transformers serve`` on the CPU.

    python bench/openai_throughput.py                                 # tiny model, 128 prompts, concurrency 1, 8, 64
    python bench/openai_throughput.py --model default --prompts 64    # SmolLM2-135M-Instruct
    python bench/openai_throughput.py --servers 2                     # also: the same prompts over two servers
    python bench/openai_throughput.py --continuous-batching           # the server batches requests in flight

It starts ``--servers`` copies of ``transformers serve MODEL --device cpu``, each on ``--threads`` torch threads,
and sends the same ``--prompts`` greedy /v1/completions requests (``--max-new-tokens`` each) first one at a time
from a plain ``requests`` loop (the anchor: what any client gets with no concurrency), then through evaltune's
openai backend at each ``--concurrency``, and, with several servers, over all of them at the highest. The table
gives wall time, outputs/s, generated tokens/s (the servers' own usage counts), the speed over the anchor, and how
many answers are word for word the anchor's (greedy decoding: a server that batches may pad differently).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.speedkit import bench_env, bench_model
from evaltune.harness.backends.base import GenerationRequest
from evaltune.harness.backends.openai import OpenAIBackend, OpenAIConfig
from evaltune.harness.suite import GenerationSettings
from tests.fixtures.served_model import transformers_serve


@dataclass(frozen=True)
class Measured:
    label: str
    concurrency: int
    endpoints: int
    seconds: float
    outputs: int
    tokens: int
    texts: tuple[str, ...]

    @property
    def outputs_per_s(self) -> float:
        return self.outputs / self.seconds

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds


def main(argv: Sequence[str] | None = None) -> None:
    args = _arguments(argv)
    with tempfile.TemporaryDirectory(prefix="openai_throughput_") as tmp:
        model = bench_model(args.model, Path(tmp))
        with ExitStack() as stack:
            urls = [stack.enter_context(_server(model, Path(tmp), args.threads, args.continuous_batching))
                    for _ in range(args.servers)]
            print(f"{args.servers} x transformers serve {model.name} on {args.threads} thread(s) each"
                  f"{', continuous batching' if args.continuous_batching else ''}", flush=True)
            rows = _measure(urls, str(model), args)
    print()
    print(_table(rows))


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny", help="tiny (the tests' model, built here), default, or a folder")
    parser.add_argument("--prompts", type=int, default=128)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--concurrency", default="1,8,64", help="comma-separated requests in flight to measure")
    parser.add_argument("--servers", type=int, default=1, help="servers started; with 2 or more, one more row")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each server")
    parser.add_argument("--continuous-batching", action="store_true", help="start the servers with it")
    return parser.parse_args(argv)


def _measure(urls: list[str], model: str, args: argparse.Namespace) -> list[Measured]:
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, chat="never")
    prompts = [f"Question {i}: what comes after the number {i}?" for i in range(args.prompts)]
    _plain_loop(urls[0], model, prompts[:2], settings)  # warm-up: the server loads the model on first use
    rows = [_plain_loop(urls[0], model, prompts, settings)]
    print(f"  anchor: {rows[0].seconds:.1f} s", flush=True)
    levels = [int(c) for c in args.concurrency.split(",")]
    for concurrency in levels:
        rows.append(_backend(urls[:1], model, prompts, settings, concurrency))
        print(f"  evaltune at {concurrency}: {rows[-1].seconds:.1f} s", flush=True)
    if len(urls) > 1:
        rows.append(_backend(urls, model, prompts, settings, max(levels)))
        print(f"  evaltune over {len(urls)} servers: {rows[-1].seconds:.1f} s", flush=True)
    return rows


def _plain_loop(url: str, model: str, prompts: list[str], settings: GenerationSettings) -> Measured:
    """The same requests the backend sends, one at a time from one ``requests`` session."""
    texts, tokens = [], 0
    started = time.perf_counter()
    with requests.Session() as session:
        for prompt in prompts:
            body = {"model": model, "prompt": prompt, "max_tokens": settings.max_new_tokens,
                    "temperature": settings.temperature, "top_p": settings.top_p, "seed": 0}
            response = session.post(url + "/completions", json=body, timeout=300)
            response.raise_for_status()
            data = response.json()
            texts.append(data["choices"][0]["text"])
            tokens += int((data.get("usage") or {}).get("completion_tokens") or 0)
    return Measured("requests loop (anchor)", 1, 1, time.perf_counter() - started, len(prompts), tokens,
                    tuple(texts))


def _backend(urls: list[str], model: str, prompts: list[str], settings: GenerationSettings,
             concurrency: int) -> Measured:
    backend = OpenAIBackend(OpenAIConfig(",".join(urls), model, concurrency=concurrency))
    try:
        started = time.perf_counter()
        completions = backend.generate([GenerationRequest(prompt, settings) for prompt in prompts])
        seconds = time.perf_counter() - started
    finally:
        backend.close()
    label = "evaltune openai" if len(urls) == 1 else f"evaltune openai, {len(urls)} endpoints"
    return Measured(label, concurrency, len(urls), seconds, len(completions),
                    sum(c.completion_tokens for c in completions), tuple(c.text for c in completions))


@contextmanager
def _server(model: Path, scratch: Path, threads: int, continuous_batching: bool) -> Iterator[str]:
    """``transformers serve`` on a free loopback port until the block ends; its base URL."""
    extra = ["--log-level", "warning"]
    if continuous_batching:
        # Its default KV cache takes a share of the machine's memory (14.5 GB here for the 1 M-parameter model, so
        # that a second server was killed for memory); 512 blocks hold 512 x block-size tokens, plenty for a bench.
        extra += ["--continuous-batching", "--cb-num-blocks", "512"]
    log_path = Path(tempfile.mkdtemp(dir=scratch)) / "serve.log"
    try:
        with transformers_serve(model, log_path, bench_env(threads), extra, wait_s=180) as url:
            yield url
    except BaseException:
        print(f"--- the server's log:\n{log_path.read_text()[-3000:]}", file=sys.stderr)
        raise


def _table(rows: list[Measured]) -> str:
    anchor = rows[0]
    lines = ["| client | concurrency | endpoints | wall s | outputs/s | tokens/s | x anchor | same text as anchor |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        same = sum(a == b for a, b in zip(row.texts, anchor.texts, strict=True))
        lines.append(f"| {row.label} | {row.concurrency} | {row.endpoints} | {row.seconds:.1f} | "
                     f"{row.outputs_per_s:.2f} | {row.tokens_per_s:.1f} | {anchor.seconds / row.seconds:.2f} | "
                     f"{same}/{len(anchor.texts)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
