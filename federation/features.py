"""Churn features and labels (pure): one row per member, from what the member's node already holds.

One row per member matters beyond tidiness: Opacus bounds each *row's* influence, so with one row
per member its guarantee is a guarantee per member. Every feature looks only at events up to the
cutoff date; the label looks only after it, so nothing of the future leaks into a row.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from importlib.resources import files
from itertools import pairwise
from statistics import fmean

#: The columns of a row, in order (the model and the explanations name them this way).
FEATURES: tuple[str, ...] = (
    "recency_days",
    "frequency",
    "monetary_fen",
    "tenure_days",
    "mean_basket_fen",
    "mean_items",
    "mean_gap_days",
    "max_gap_days",
    "points_balance",
    "redemption_ratio",
    "exchanges",
    "tier",
)
#: Heavy-tailed columns, taken as log(1 + x) before scaling.
LOG_FEATURES = frozenset({"frequency", "monetary_fen", "mean_basket_fen", "mean_items", "points_balance", "exchanges"})


@dataclass(frozen=True)
class Purchase:
    """One purchase: the day, its amount in fen and how many items."""

    day: date
    amount_fen: int
    items: int = 1


@dataclass(frozen=True)
class MemberHistory:
    """What a node knows of one member, keyed by pseudonym; wallet figures are as at the cutoff."""

    member: str
    purchases: tuple[Purchase, ...]
    points_earned: int = 0
    points_redeemed: int = 0
    points_balance: int = 0
    exchanges: int = 0
    tier: int = 0  # the tier's rank, lowest 0


def features(history: MemberHistory, cutoff: date) -> list[float]:
    """The member's row at ``cutoff`` (purchases after it are ignored), in :data:`FEATURES` order.

    A member with no purchase by the cutoff gets recency = tenure = 0 and zero spend: the model
    sees "new, nothing yet" rather than a missing value.
    """
    before = [p for p in history.purchases if p.day <= cutoff]
    days = sorted({p.day for p in before})
    spend = sum(p.amount_fen for p in before)
    gaps = [(b - a).days for a, b in pairwise(days)]
    row = {
        "recency_days": (cutoff - days[-1]).days if days else 0,
        "frequency": len(days),
        "monetary_fen": spend,
        "tenure_days": (cutoff - days[0]).days if days else 0,
        "mean_basket_fen": spend / len(days) if days else 0.0,
        "mean_items": fmean(p.items for p in before) if before else 0.0,
        "mean_gap_days": fmean(gaps) if gaps else 0.0,
        "max_gap_days": max(gaps) if gaps else 0,
        "points_balance": history.points_balance,
        "redemption_ratio": history.points_redeemed / history.points_earned if history.points_earned else 0.0,
        "exchanges": history.exchanges,
        "tier": history.tier,
    }
    return [float(row[name]) for name in FEATURES]


def churned(history: MemberHistory, cutoff: date, horizon_end: date) -> int:
    """1 if the member bought nothing after ``cutoff`` up to ``horizon_end`` (inclusive), else 0."""
    if horizon_end <= cutoff:
        raise ValueError("the label window ends after the cutoff")
    return int(not any(cutoff < p.day <= horizon_end for p in history.purchases))


def dataset(
    histories: Iterable[MemberHistory], cutoff: date, horizon_end: date
) -> tuple[list[str], list[list[float]], list[int]]:
    """Members, rows and labels for everyone who had bought by the cutoff (the others cannot churn)."""
    members, rows, labels = [], [], []
    for h in histories:
        if any(p.day <= cutoff for p in h.purchases):
            members.append(h.member)
            rows.append(features(h, cutoff))
            labels.append(churned(h, cutoff, horizon_end))
    return members, rows, labels


@dataclass(frozen=True)
class Scaler:
    """log(1 + x) on heavy-tailed columns, then standardisation with fixed means and spreads.

    Brands must scale alike for their models to average meaningfully, so the statistics come
    from a shared reference (in the demo: agreed constants; in simulation: the pooled rows).
    """

    columns: tuple[str, ...]
    means: tuple[float, ...]
    scales: tuple[float, ...]
    logged: frozenset[str] = LOG_FEATURES

    @classmethod
    def fit(cls, rows: Sequence[Sequence[float]], columns: Sequence[str] = FEATURES,
            logged: frozenset[str] = LOG_FEATURES) -> Scaler:
        """Statistics of ``rows`` (after the log step); a constant column gets spread 1."""
        if not rows:
            raise ValueError("cannot fit a scaler on no rows")
        pre = [_log(row, columns, logged) for row in rows]
        means = [fmean(col) for col in zip(*pre, strict=True)]
        scales = []
        for col, mean in zip(zip(*pre, strict=True), means, strict=True):
            var = fmean((x - mean) ** 2 for x in col)
            scales.append(math.sqrt(var) if var > 1e-12 else 1.0)
        return cls(tuple(columns), tuple(means), tuple(scales), logged)

    @classmethod
    def reference(cls) -> Scaler:
        """The alliance's agreed scaling of :data:`FEATURES` (``federation/data/churn_scaling.json``)."""
        data = json.loads(files("federation").joinpath("data/churn_scaling.json").read_text(encoding="utf-8"))
        cols = data["columns"]
        return cls(
            FEATURES,
            tuple(float(cols[c]["mean"]) for c in FEATURES),
            tuple(float(cols[c]["scale"]) for c in FEATURES),
        )

    def transform(self, rows: Iterable[Sequence[float]]) -> list[list[float]]:
        """Scaled copies of ``rows``."""
        return [
            [(x - m) / s for x, m, s in zip(_log(row, self.columns, self.logged), self.means, self.scales, strict=True)]
            for row in rows
        ]


def _log(row: Sequence[float], columns: Sequence[str], logged: frozenset[str]) -> list[float]:
    if len(row) != len(columns):
        raise ValueError(f"a row has {len(row)} values for {len(columns)} columns")
    return [math.log1p(max(x, 0.0)) if c in logged else float(x) for x, c in zip(row, columns, strict=True)]
