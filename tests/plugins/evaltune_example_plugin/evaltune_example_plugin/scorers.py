import re

from evaltune.metrics.records import ScoreResult
from evaltune.metrics.registry import ItemScorer, scorer


@scorer("mentions", family="quality", factory=True)
def mentions(word: str = "Paris", ignore_case: bool = True) -> ItemScorer:
    """1 when the output mentions the word (as a whole word), else 0.

    Args:
        word: the word to look for.
        ignore_case: whether "paris" counts as "Paris".
    """
    if not word.strip():
        raise ValueError("word must not be empty")
    pattern = re.compile(rf"\b{re.escape(word)}\b", re.IGNORECASE if ignore_case else 0)
    return lambda example: ScoreResult(float(pattern.search(example.output) is not None), {"word": word})
