"""Inter-annotator agreement as pure functions over plain counts. They live in ``evaltune.metrics.stats.agreement``
(the judge-vs-annotators report uses them too); the app keeps importing them from here."""

from __future__ import annotations

from evaltune.metrics.stats.agreement import (
    Level,
    Unit,
    cohen_kappa,
    coincidences,
    krippendorff_alpha,
    unit_disagreement,
    units_from_matrix,
)

__all__ = [
    "Level",
    "Unit",
    "cohen_kappa",
    "coincidences",
    "krippendorff_alpha",
    "unit_disagreement",
    "units_from_matrix",
]
