"""A wallet journal read as a churn history: what the node's rows are made of."""

from __future__ import annotations

from datetime import date

import pytest

from federation.features import FEATURES, features
from node.learning.rows import ChurnWindow, history_from_journal
from node.wallet.journal import Kind, Movement
from node.wallet.tiers import default_rules

CUT = date(2026, 6, 30)


def earn(day: date, points: int, reason: str = "purchase") -> Movement:
    return Movement(Kind.EARN, reason, points, day)


def test_purchases_are_the_purchase_earns_with_their_spend_at_the_brands_rate() -> None:
    h = history_from_journal("m", [earn(date(2026, 1, 5), 40), earn(date(2026, 2, 1), 500, "promotion")], CUT, 2,
                             default_rules())
    assert [(p.day, p.amount_fen) for p in h.purchases] == [(date(2026, 1, 5), 2000)]  # 40 points at 2/yuan


def test_wallet_figures_are_as_at_the_cutoff() -> None:
    moves = [
        earn(date(2026, 1, 5), 100),
        Movement(Kind.REDEEM, "reward", -30, date(2026, 3, 1)),
        Movement(Kind.REDEEM, "exchange_out", -20, date(2026, 4, 1)),
        earn(date(2026, 8, 1), 70),  # after the cutoff: the label's business, not the features'
        Movement(Kind.REDEEM, "reward", -10, date(2026, 9, 1)),
    ]
    h = history_from_journal("m", moves, CUT, 1, default_rules())
    assert (h.points_earned, h.points_redeemed, h.points_balance, h.exchanges) == (100, 50, 50, 1)
    assert len(h.purchases) == 2  # the later purchase stays, for the label


def test_the_tier_is_the_rank_the_rules_give_at_the_cutoff() -> None:
    # five purchases of CNY 10,000 by May: silver (4 in the year, CNY 2,000), not gold (12 needed)
    big = [earn(date(2026, m, 1), 10_000) for m in range(1, 6)]
    h = history_from_journal("m", big, CUT, 1, default_rules())
    assert h.tier == 1
    row = dict(zip(FEATURES, features(h, CUT), strict=True))
    assert row["tier"] == h.tier


def test_a_window_must_end_after_its_cutoff() -> None:
    with pytest.raises(ValueError, match="ends after the cutoff"):
        ChurnWindow(CUT, CUT)
