"""Tiers from recency, frequency and monetary value, and expiry rules that change only with notice (pure).

A brand configures its tiers as data: each tier names the least recency, number of purchases and
spend (integer fen) in a rolling window that earns it, and a member holds the highest tier whose
every threshold they meet. Expiry is a number of calendar months after a lot is earned; a rule
change that shortens it takes effect no sooner than 30 days after it is announced, while a change
that lengthens it may apply at once. A lot keeps the expiry of the rule in force on the day it was
earned: members are never retroactively promised less (a design choice).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

NOTICE = timedelta(days=30)


@dataclass(frozen=True)
class Activity:
    """A member's qualifying purchases in the window ending on ``as_of``."""

    as_of: date
    last_activity: date | None
    transactions: int
    spend_fen: int


def summarise(purchases: Iterable[tuple[date, int]], as_of: date, window_days: int) -> Activity:
    """Summarise ``(day, spend_fen)`` purchases over ``(as_of - window_days, as_of]``."""
    start = as_of - timedelta(days=window_days)
    days, count, spend = [], 0, 0
    for day, fen in purchases:
        if start < day <= as_of:
            days.append(day)
            count += 1
            spend += fen
    return Activity(as_of, max(days, default=None), count, spend)


class TierRule(BaseModel):
    """One tier and what it takes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
    rank: int = Field(ge=0)
    min_recency_days: int | None = Field(default=None, ge=0, description="active within this many days")
    min_transactions: int = Field(default=0, ge=0)
    min_spend_fen: int = Field(default=0, ge=0)

    @property
    def is_base(self) -> bool:
        """Whether everyone qualifies."""
        return self.min_recency_days is None and self.min_transactions == 0 and self.min_spend_fen == 0

    def met_by(self, activity: Activity) -> bool:
        """Whether ``activity`` meets every threshold."""
        if self.min_recency_days is not None:
            last = activity.last_activity
            if last is None or (activity.as_of - last).days > self.min_recency_days:
                return False
        return activity.transactions >= self.min_transactions and activity.spend_fen >= self.min_spend_fen


class TierRules(BaseModel):
    """A brand's tiers: unique names and ranks, and exactly one base tier everyone holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_days: int = Field(default=365, ge=1, le=3660)
    tiers: tuple[TierRule, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _well_formed(self) -> TierRules:
        names = [t.name for t in self.tiers]
        ranks = [t.rank for t in self.tiers]
        if len(set(names)) != len(names):
            raise ValueError("tier names must be unique")
        if len(set(ranks)) != len(ranks):
            raise ValueError("tier ranks must be unique")
        if sum(t.is_base for t in self.tiers) != 1:
            raise ValueError("exactly one base tier (no thresholds) is needed, so every member has a tier")
        return self


def tier_for(rules: TierRules, activity: Activity) -> TierRule:
    """The highest-ranked tier whose every threshold ``activity`` meets."""
    return max((t for t in rules.tiers if t.met_by(activity)), key=lambda t: t.rank)


def default_rules() -> TierRules:
    """Four tiers over a year: member, silver, gold, platinum (CNY 2,000 / 8,000 / 20,000 spent)."""
    return TierRules(
        tiers=(
            TierRule(name="member", rank=0),
            TierRule(name="silver", rank=1, min_recency_days=180, min_transactions=4, min_spend_fen=200_000),
            TierRule(name="gold", rank=2, min_recency_days=90, min_transactions=12, min_spend_fen=800_000),
            TierRule(name="platinum", rank=3, min_recency_days=60, min_transactions=24, min_spend_fen=2_000_000),
        )
    )


# --- expiry rules ----------------------------------------------------------------------------


class ExpiryPolicy(BaseModel):
    """Points expire this many calendar months after the lot is earned."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    months: int = Field(ge=1, le=120)


class PolicyChange(BaseModel):
    """A new expiry policy, when it was announced and from when it applies."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    announced_on: date
    effective_from: date
    policy: ExpiryPolicy


class PolicyChangeError(ValueError):
    """A change the notice rule forbids."""


def validate_change(current: ExpiryPolicy, change: PolicyChange) -> None:
    """Refuse a shortening that takes effect less than 30 days after it is announced."""
    if change.effective_from < change.announced_on:
        raise PolicyChangeError("a change cannot take effect before it is announced")
    shorter = change.policy.months < current.months
    if shorter and change.effective_from < change.announced_on + NOTICE:
        earliest = change.announced_on + NOTICE
        raise PolicyChangeError(
            f"shortening expiry from {current.months} to {change.policy.months} months needs 30 days' notice: "
            f"effective {earliest.isoformat()} at the earliest"
        )


def policy_on(history: Sequence[PolicyChange], day: date) -> ExpiryPolicy:
    """The policy in force on ``day``: the latest change effective by then (the first one always applies)."""
    if not history:
        raise ValueError("an expiry history starts with the initial policy")
    in_force = [c for c in history if c.effective_from <= day]
    chosen = max(in_force, key=lambda c: (c.effective_from, c.announced_on)) if in_force else history[0]
    return chosen.policy


def add_months(day: date, months: int) -> date:
    """``day`` plus calendar months, clamped to the end of a shorter month (31 Jan + 1 = 28/29 Feb)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def expiry_for(earned_on: date, history: Sequence[PolicyChange]) -> date:
    """The expiry of a lot earned on ``earned_on`` under the policy then in force."""
    return add_months(earned_on, policy_on(history, earned_on).months)
