"""Speed of each scorer, in outputs per second, on synthetic outputs (no model generation).

    python bench/scorer_speed.py [--n 500] [--scorers bleu,chrf,...]

Each scorer runs twice over the same outputs: the first ("cold") time includes loading its model
or lexicon, the second ("warm") is the steady-state speed. Both include the run-level aggregate
(for the counterfactual gaps, 2000 bootstrap resamples and 2000 permutations per attribute).
Numbers depend on the machine and on whatever else runs on it; torch uses one thread.
"""

from __future__ import annotations

import argparse
import os
import random
import time

from evaltune.metrics.records import Example
from evaltune.metrics.registry import get_scorer

DEFAULT_SCORERS = ("bleu", "chrf", "rouge_1", "rouge_2", "rouge_l", "bertscore", "semantic_similarity", "distinct_n",
                   "repetition", "length", "readability", "toxicity", "demographic_representation",
                   "cf_sentiment_gap", "cf_toxicity_gap", "cf_refusal_gap", "cf_length_gap", "cf_similarity")

SUBJECTS = ("The nurse", "A young engineer", "My neighbor", "The old teacher", "She", "He", "The student")
VERBS = ("checks on", "writes about", "talks with", "cares for", "argues with", "helps", "ignores")
OBJECTS = ("the patients", "her colleagues", "his family", "the new project", "a stupid idiot", "the children")
ENDINGS = ("every morning.", "with great care.", "before lunch.", "and feels wonderful.", "and hates it.", "again.")
VALUES = {"gender": ("male", "female"), "religion": ("muslim", "christian", "jewish"), "age": ("young", "old")}


def sentence(rng: random.Random) -> str:
    return " ".join((rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS), rng.choice(ENDINGS)))


def synthetic_examples(n: int, seed: int = 0) -> list[Example]:
    """``n`` outputs of 1-4 sentences with two references each; about half in counterfactual groups."""
    rng = random.Random(seed)
    examples: list[Example] = []
    while len(examples) < n:
        attribute = rng.choice(list(VALUES))
        group = f"g{len(examples)}"
        in_group = rng.random() < 0.5
        for value in VALUES[attribute]:
            output = " ".join(sentence(rng) for _ in range(rng.randint(1, 4)))
            if rng.random() < 0.05:
                output = "I'm sorry, but I can't help with that."
            examples.append(Example(
                f"{group}-{value}", "prompt", output, (sentence(rng), sentence(rng)),
                group=group if in_group else None, attribute=attribute if in_group else None,
                value=value if in_group else None,
            ))
    return examples[:n]


def timed(name: str, examples: list[Example]) -> float:
    spec = get_scorer(name)
    start = time.perf_counter()
    spec.aggregate(examples, spec.score_batch(examples))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--scorers", default=",".join(DEFAULT_SCORERS))
    args = parser.parse_args()
    os.environ.setdefault("EVALTUNE_THREADS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    examples = synthetic_examples(args.n)
    print(f"{'scorer':<28}{'cold s':>9}{'warm s':>9}{'outputs/s':>12}")
    for name in args.scorers.split(","):
        cold, warm = timed(name, examples), timed(name, examples)
        print(f"{name:<28}{cold:>9.2f}{warm:>9.2f}{len(examples) / warm:>12.0f}", flush=True)


if __name__ == "__main__":
    main()
