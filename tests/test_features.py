"""Churn features and labels: one row per member, nothing from after the cutoff, the label only from after."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.features import FEATURES, MemberHistory, Purchase, Scaler, churned, dataset, features
from federation.metrics import auc

CUTOFF = date(1997, 12, 31)
HORIZON = date(1998, 6, 30)


def h(*days: date, member: str = "p1", **wallet: int) -> MemberHistory:
    return MemberHistory(member, tuple(Purchase(d, 1000 * (i + 1), 2) for i, d in enumerate(days)), **wallet)


def row(history: MemberHistory) -> dict[str, float]:
    return dict(zip(FEATURES, features(history, CUTOFF), strict=True))


def test_recency_frequency_tenure_and_gaps_come_from_the_purchase_days() -> None:
    r = row(h(date(1997, 1, 1), date(1997, 1, 11), date(1997, 12, 1)))
    assert (r["recency_days"], r["frequency"], r["tenure_days"]) == (30, 3, 364)
    assert (r["mean_gap_days"], r["max_gap_days"]) == (167.0, 324)
    assert (r["monetary_fen"], r["mean_basket_fen"], r["mean_items"]) == (6000, 2000, 2)


def test_the_wallet_gives_balance_redemption_ratio_exchanges_and_tier() -> None:
    r = row(h(date(1997, 5, 1), points_earned=400, points_redeemed=100, points_balance=300, exchanges=2, tier=1))
    assert (r["points_balance"], r["redemption_ratio"], r["exchanges"], r["tier"]) == (300, 0.25, 2, 1)


dates = st.dates(min_value=date(1997, 1, 1), max_value=date(1998, 12, 31))


@given(st.lists(dates, min_size=1, max_size=12), st.lists(dates, max_size=12))
def test_nothing_after_the_cutoff_changes_a_row(past: list[date], other: list[date]) -> None:
    before = [d for d in past if d <= CUTOFF]
    later = [d for d in other if d > CUTOFF]
    assert features(h(*before), CUTOFF) == features(h(*before, *later), CUTOFF)


@given(st.lists(dates, max_size=12))
def test_a_member_churned_exactly_when_nothing_was_bought_in_the_label_window(days: list[date]) -> None:
    assert churned(h(*days), CUTOFF, HORIZON) == int(not any(CUTOFF < d <= HORIZON for d in days))


def test_members_who_had_not_bought_by_the_cutoff_get_no_row() -> None:
    members, rows, labels = dataset(
        [h(date(1997, 3, 1), member="a"), h(date(1998, 2, 1), member="b")], CUTOFF, HORIZON
    )
    assert (members, labels, len(rows)) == (["a"], [1], 1)


def test_a_label_window_must_follow_the_cutoff() -> None:
    with pytest.raises(ValueError, match="after the cutoff"):
        churned(h(date(1997, 3, 1)), CUTOFF, CUTOFF)


def test_the_scaler_centres_and_scales_every_column_and_keeps_constants_finite() -> None:
    rows = [features(h(date(1997, 1, 1) + timedelta(days=i * 30)), CUTOFF) for i in range(6)]
    scaled = Scaler.fit(rows).transform(rows)
    columns = list(zip(*scaled, strict=True))
    assert (len(scaled), len(columns)) == (6, len(FEATURES))
    for col in columns:
        assert abs(sum(col) / len(col)) < 1e-9
        assert all(abs(x) < 10 for x in col)


def test_auc_is_one_for_a_perfect_ranking_zero_for_a_reversed_one_and_half_for_ties() -> None:
    assert auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    with pytest.raises(ValueError, match="both classes"):
        auc([1, 1], [0.1, 0.2])


@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 5)), min_size=2, max_size=40))
def test_auc_counts_the_pairs_a_positive_wins(pairs: list[tuple[int, int]]) -> None:
    labels, scores = [y for y, _ in pairs], [float(s) for _, s in pairs]
    pos = [s for y, s in pairs if y]
    neg = [s for y, s in pairs if not y]
    if not pos or not neg:
        return
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    assert auc(labels, scores) == pytest.approx(wins / (len(pos) * len(neg)))
