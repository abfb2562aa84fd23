"""Any evaltune scorer as a Hugging Face ``evaluate`` module, loaded offline from this folder.

    import evaluate
    from evaltune.metrics.hf_evaluate import module_path
    em = evaluate.load(module_path(), "answer_match")
    em.compute(predictions=["It is Paris."], references=[["Paris"]])
    # {'answer_match': 1.0, 'answer_match_ci_low': ..., 'answer_match_ci_high': ..., 'answer_match_n': 1}

The config name is the scorer's registry name. ``references`` is a list of accepted answers per
prediction (or one string); ``contexts`` and ``expect_abstention`` may be passed as keyword lists.
"""

from __future__ import annotations

from typing import Any

import datasets
import evaluate

from evaltune.metrics.records import Example
from evaltune.metrics.registry import get_scorer

_FEATURES = [
    datasets.Features({"predictions": datasets.Value("string"),
                       "references": datasets.Sequence(datasets.Value("string"))}),
    datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
]


class EvaltuneScorer(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        spec = get_scorer(self.config_name)
        return evaluate.MetricInfo(
            description=f"evaltune scorer '{spec.name}' ({spec.family}, {spec.direction}): {spec.description}",
            citation="",
            inputs_description="predictions: list of str; references: list of str or list of list of str",
            features=_FEATURES,
        )

    def _compute(self, predictions: list[str], references: list[Any], contexts: list[str] | None = None,
                 expect_abstention: list[bool] | None = None) -> dict[str, float]:
        spec = get_scorer(self.config_name)
        examples = [
            Example(
                item_id=str(i),
                prompt="",
                output=prediction,
                references=tuple([reference] if isinstance(reference, str) else reference),
                context=contexts[i] if contexts else None,
                expect_abstention=bool(expect_abstention[i]) if expect_abstention else False,
            )
            for i, (prediction, reference) in enumerate(zip(predictions, references, strict=True))
        ]
        results: dict[str, float] = {}
        for metric in spec.aggregate(examples, spec.score_batch(examples)):
            results |= {metric.name: metric.value, f"{metric.name}_ci_low": metric.ci_low,
                        f"{metric.name}_ci_high": metric.ci_high, f"{metric.name}_n": metric.n}
        return results
