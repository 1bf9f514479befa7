"""Tiers over recency, frequency and spend; expiry rules that shorten only after 30 days' notice."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from node.wallet.tiers import (
    Activity,
    ExpiryPolicy,
    PolicyChange,
    PolicyChangeError,
    TierRule,
    TierRules,
    add_months,
    default_rules,
    expiry_for,
    policy_on,
    summarise,
    tier_for,
    validate_change,
)

DAY = date(2026, 11, 22)
RULES = default_rules()


def activity(days_ago: int | None, transactions: int, spend_fen: int) -> Activity:
    last = None if days_ago is None else DAY - timedelta(days=days_ago)
    return Activity(DAY, last, transactions, spend_fen)


def test_a_member_with_no_activity_is_in_the_base_tier() -> None:
    assert tier_for(RULES, activity(None, 0, 0)).name == "member"


def test_the_highest_tier_whose_every_threshold_is_met_wins() -> None:
    assert tier_for(RULES, activity(10, 12, 800_000)).name == "gold"
    assert tier_for(RULES, activity(10, 11, 5_000_000)).name == "silver"  # gold needs 12 purchases


def test_recency_is_measured_to_the_as_of_day() -> None:
    assert tier_for(RULES, activity(90, 12, 800_000)).name == "gold"
    assert tier_for(RULES, activity(91, 12, 800_000)).name == "silver"


def test_only_purchases_inside_the_window_count() -> None:
    purchases = [(DAY - timedelta(days=365), 100), (DAY - timedelta(days=364), 200), (DAY, 300)]
    summary = summarise(purchases, DAY, 365)
    assert (summary.transactions, summary.spend_fen, summary.last_activity) == (2, 500, DAY)


def test_rules_without_a_base_tier_are_rejected() -> None:
    with pytest.raises(ValidationError, match="base tier"):
        TierRules(tiers=(TierRule(name="gold", rank=1, min_transactions=3),))


def test_duplicate_ranks_are_rejected() -> None:
    with pytest.raises(ValidationError, match="ranks"):
        TierRules(tiers=(TierRule(name="member", rank=0), TierRule(name="gold", rank=0, min_transactions=1)))


@given(
    st.integers(0, 400),
    st.integers(0, 50),
    st.integers(0, 5_000_000),
    st.integers(0, 60),
    st.integers(0, 10),
    st.integers(0, 1_000_000),
)
def test_more_activity_never_lowers_the_tier(
    days_ago: int, transactions: int, spend: int, fresher: int, more: int, extra: int
) -> None:
    base = tier_for(RULES, activity(days_ago, transactions, spend))
    better = tier_for(RULES, activity(max(0, days_ago - fresher), transactions + more, spend + extra))
    assert better.rank >= base.rank


# --- expiry ----------------------------------------------------------------------------------

TWO_YEARS = ExpiryPolicy(months=24)


def change(announced: date, effective: date, months: int) -> PolicyChange:
    return PolicyChange(announced_on=announced, effective_from=effective, policy=ExpiryPolicy(months=months))


def test_shortening_expiry_needs_thirty_days_notice() -> None:
    with pytest.raises(PolicyChangeError, match="30 days"):
        validate_change(TWO_YEARS, change(DAY, DAY + timedelta(days=29), 12))
    assert validate_change(TWO_YEARS, change(DAY, DAY + timedelta(days=30), 12)) is None  # accepted


def test_lengthening_expiry_takes_effect_at_once() -> None:
    assert validate_change(TWO_YEARS, change(DAY, DAY, 36)) is None  # accepted the day it is announced
    with pytest.raises(PolicyChangeError, match="30 days"):  # where shortening the same day is refused
        validate_change(TWO_YEARS, change(DAY, DAY, 12))


def test_a_change_cannot_apply_before_it_is_announced() -> None:
    with pytest.raises(PolicyChangeError, match="before it is announced"):
        validate_change(TWO_YEARS, change(DAY, DAY - timedelta(days=1), 36))


def test_a_lot_keeps_the_expiry_of_the_policy_it_was_earned_under() -> None:
    history = [change(date(2020, 1, 1), date(2020, 1, 1), 24), change(DAY, DAY + timedelta(days=30), 12)]
    assert expiry_for(DAY, history) == date(2028, 11, 22)  # earned before the shorter rule applies
    assert expiry_for(DAY + timedelta(days=30), history) == date(2027, 12, 22)
    assert policy_on(history, DAY + timedelta(days=29)).months == 24


def test_month_arithmetic_clamps_to_the_month_end() -> None:
    assert add_months(date(2027, 1, 31), 1) == date(2027, 2, 28)
    assert add_months(date(2028, 1, 31), 1) == date(2028, 2, 29)
    assert add_months(date(2026, 12, 15), 13) == date(2028, 1, 15)


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)), st.integers(1, 120))
def test_expiry_is_always_after_the_earn_day(earned: date, months: int) -> None:
    history = [change(date(1999, 1, 1), date(1999, 1, 1), months)]
    assert expiry_for(earned, history) > earned
