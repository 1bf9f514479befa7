"""Churn risk for one member with the factors behind it (pure apart from the model's arithmetic).

The explanation is an occlusion: each feature in turn is set to the alliance's reference value (0
after the agreed scaling: an average member) and the change in risk is that feature's effect. It
is exact for what the model does with this row, needs no extra library, and names features in
words a member can read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from federation.training import predict

#: Risk bands shown to members and operators: below 0.3 low, below 0.6 medium, else high.
BANDS = ((0.3, "low"), (0.6, "medium"), (1.01, "high"))


@dataclass(frozen=True)
class Factor:
    """One feature's effect on the risk (positive: it raises the risk)."""

    feature: str
    effect: float


@dataclass(frozen=True)
class Score:
    """A member's churn risk, its band and its main factors, largest effect first."""

    risk: float
    band: str
    factors: tuple[Factor, ...]


def band_of(risk: float) -> str:
    """The band ``risk`` falls in."""
    return next(name for upper, name in BANDS if risk < upper)


def score_rows(
    weights: Mapping[str, np.ndarray], rows: Sequence[Sequence[float]], names: Sequence[str], top: int = 3
) -> list[Score]:
    """Scores of already scaled ``rows`` (columns ``names``), each with its ``top`` factors."""
    if not rows:
        return []
    width = len(names)
    batch: list[list[float]] = []
    for row in rows:
        if len(row) != width:
            raise ValueError(f"a row has {len(row)} values for {width} features")
        batch.append(list(row))
        for i in range(width):
            occluded = list(row)
            occluded[i] = 0.0
            batch.append(occluded)
    risks = predict(weights, batch)
    scores = []
    for r in range(len(rows)):
        base = risks[r * (width + 1)]
        effects = [base - risks[r * (width + 1) + 1 + i] for i in range(width)]
        order = sorted(range(width), key=lambda i: -abs(effects[i]))[:top]
        scores.append(Score(base, band_of(base), tuple(Factor(names[i], effects[i]) for i in order)))
    return scores
