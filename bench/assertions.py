"""The time per-item assertions add to scoring, per 1,000 outputs (no model generation).

    python bench/assertions.py [--n 1000] [--repeats 3] [--threads 1]

Each row checks the same synthetic outputs (a few sentences, some holding JSON) with one set of assertions,
``--repeats`` times, and reports the median time scaled to 1,000 outputs, with the run metrics included. The
embedding row's first pass ("cold") includes loading MiniLM; its median is over warm passes with the embedding
cache cleared, so every text is encoded each time. Torch threads are set explicitly (``--threads``).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

CHEAP: list[dict[str, Any]] = [
    {"type": "not-contains", "value": "As an AI language model"},
    {"type": "max-words", "value": 120},
    {"type": "icontains-any", "value": ["refund", "order"]},
    {"type": "regex", "value": r"\b\d{3}\b"},
    {"type": "contains-json", "schema": {"type": "object", "required": ["order_id", "action"]}},
    {"type": "levenshtein", "value": "Your refund for order 812 is on its way.", "threshold": 10},
]
SETS: dict[str, list[dict[str, Any]]] = {
    "6 text types": CHEAP,
    "is-json + schema": [{"type": "is-json", "schema": {"type": "object", "required": ["order_id"]}}],
    "rouge-n + bleu": [{"type": "rouge-n", "value": "Your refund for order 812 is on its way."},
                       {"type": "bleu", "value": "Your refund for order 812 is on its way."}],
    "scorer length": [{"type": "scorer", "name": "length", "max": 120}],
    "similar (MiniLM)": [{"type": "similar", "value": "Your refund for order 812 is on its way."}],
}

PHRASES = ("Your refund is on its way.", "Order 812 was refunded.", "I cannot share the admin password.",
           "Paris is the capital of France.", "As an AI language model, I have no opinions.",
           "The parcel left the warehouse on Monday.", "Please allow five working days.")


def outputs(n: int, seed: int = 0) -> list[str]:
    """``n`` outputs of 1-5 sentences; about a third carry a JSON object in prose."""
    rng = random.Random(seed)
    made = []
    for i in range(n):
        text = " ".join(rng.choice(PHRASES) for _ in range(rng.randint(1, 5)))
        if rng.random() < 0.33:
            text += f' Here it is: {{"order_id": {100 + i}, "action": "refund"}}'
        made.append(text)
    return made


def timed(examples: Sequence[Any], clear: bool) -> float:
    from evaltune.metrics.assertions import assertion_metrics, check_assertions
    from evaltune.metrics.model_loaders.embeddings import clear_cache

    if clear:
        clear_cache()
    start = time.perf_counter()
    assertion_metrics(examples, check_assertions(examples))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from evaltune import settings

    settings.apply_threads(args.threads)  # before torch loads: it reads OMP_NUM_THREADS
    import torch

    from evaltune.metrics.assertions import assertion_from_dict
    from evaltune.metrics.records import Example

    texts = outputs(args.n)
    base = [Example(item_id=f"q{i}", prompt="Where is my refund?", output=t, latency_ms=300.0)
            for i, t in enumerate(texts)]
    scale = 1000 / args.n
    print(f"{args.n} outputs, torch threads {torch.get_num_threads()}")
    print(f"{'assertions':<20}{'per output':>11}{'cold s':>9}{'s / 1,000 outputs':>19}{'ms / output':>13}")
    start = time.perf_counter()
    for _ in range(args.n):
        [assertion_from_dict(s) for s in CHEAP]
    loading = time.perf_counter() - start
    print(f"{'load-time checks':<20}{len(CHEAP):>11}{'':>9}{loading * scale:>19.3f}{loading / args.n * 1000:>13.3f}")
    for label, specs in SETS.items():
        assertions = tuple(assertion_from_dict(s) for s in specs)
        examples = [replace(e, assertions=assertions) for e in base]
        cold = timed(examples, clear=True)
        median = statistics.median(timed(examples, clear=True) for _ in range(args.repeats))
        print(f"{label:<20}{len(assertions):>11}{cold:>9.2f}{median * scale:>19.3f}{median / args.n * 1000:>13.3f}",
              flush=True)


if __name__ == "__main__":
    main()
