"""How much of an output's wording its source lacks: novel content words and novel word pairs.

Extrinsic hallucinations add what the source never said, and they show on the surface: a summary of a news
article that names a new place, a dialogue response that adds a fact the knowledge lacks. Faithful outputs
reuse the source's words even when they rephrase its sentences, so the share of novel content words (and of
novel adjacent word pairs, which also catch recombined words) separates the two where embeddings see only
"about the same topic". Words are compared by a five-letter stem, so "designed" / "designs" / "designer" match.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from evaltune.metrics.text import tokens

STEM_LETTERS = 5
# Function words and chat filler: they carry no claim, so their novelty says nothing.
_FUNCTION_WORDS = """
a about above after again against all also am an and any are aren as at be because been before being below
between both but by can could did do does doing don down during each even ever few for from further get got had
has have having he her here hers herself him himself his how i if in into is isn it its itself just know like
ll me might more most much must my myself no nor not now of off on once one only or other our ours ourselves
out over own re really s same she should so some such t than that the their theirs them themselves then there
these they this those though through to too under until up us very was we well were what when where which while
who whom why will with would yes yet you your yours yourself yourselves oh ok okay yeah think thing things
lot lots pretty quite sure maybe actually said says say
"""
FUNCTION_WORDS = frozenset(_FUNCTION_WORDS.split())


@dataclass(frozen=True)
class Novelty:
    """Shares (0-1) of the output's content words and of its word pairs that the source does not contain."""

    words: float
    pairs: float
    source_words: int  # the source's length in words


NO_NOVELTY = Novelty(0.0, 0.0, 0)


def stem(word: str) -> str:
    return word[:STEM_LETTERS]


def novelty(output: str, source: str) -> Novelty:
    """The output's novel content words and word pairs with respect to the source (0 when it has none)."""
    out_words, src_words = tokens(output), tokens(source)
    src_stems = {stem(w) for w in src_words}
    content = [w for w in out_words if w not in FUNCTION_WORDS]
    words = sum(stem(w) not in src_stems for w in content) / len(content) if content else 0.0
    src_pairs = set(itertools.pairwise(stem(w) for w in src_words))
    out_pairs = list(itertools.pairwise(stem(w) for w in out_words))
    pairs = sum(p not in src_pairs for p in out_pairs) / len(out_pairs) if out_pairs else 0.0
    return Novelty(words, pairs, len(src_words))
