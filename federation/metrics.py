"""Model quality measures (pure)."""

from __future__ import annotations

from collections.abc import Sequence


def auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Area under the ROC curve: the chance a random positive scores above a random negative.

    Computed from ranks (Mann-Whitney U), ties counted half. Raises ``ValueError`` when only one
    class is present, where the AUC is undefined.
    """
    if len(labels) != len(scores):
        raise ValueError("one score per label")
    positives = sum(1 for y in labels if y)
    negatives = len(labels) - positives
    if not positives or not negatives:
        raise ValueError("the AUC needs both classes")
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        mid = (i + j) / 2 + 1  # ties share the mean of their ranks (1-based)
        for k in range(i, j + 1):
            ranks[order[k]] = mid
        i = j + 1
    rank_sum = sum(r for r, y in zip(ranks, labels, strict=True) if y)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
