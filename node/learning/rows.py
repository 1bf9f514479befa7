"""A member's wallet journal as a churn history (pure): what the federated model learns from.

The node records purchases as earns: the day and the points, which at the brand's rate give the
amount spent (to the yuan). Redemptions, exchanges and the tier come from the same journal, so a
training row needs nothing the wallet does not already hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from federation.features import MemberHistory, Purchase
from node.wallet.journal import Kind, Movement
from node.wallet.loyalty import FEN_PER_YUAN
from node.wallet.tiers import TierRules, summarise, tier_for

EXCHANGE_REASONS = frozenset({"exchange_in", "exchange_out"})
#: Days a churn window may name: a programme's history, with room for the date arithmetic done on
#: them (a tier's look-back, the default 180 days) to stay inside the calendar.
EARLIEST, LATEST = date(1970, 1, 1), date(2999, 12, 31)
LOOKBACK = timedelta(days=180)


@dataclass(frozen=True)
class ChurnWindow:
    """Features from everything up to ``cutoff``; churned = no purchase in (cutoff, horizon_end]."""

    cutoff: date
    horizon_end: date

    def __post_init__(self) -> None:
        if not (self.cutoff >= EARLIEST and self.horizon_end <= LATEST):
            raise ValueError(f"a churn window lies between {EARLIEST} and {LATEST}")
        if self.horizon_end <= self.cutoff:
            raise ValueError("the label window ends after the cutoff")


def churn_window(cutoff: date | None, horizon_end: date | None, today: date) -> ChurnWindow:
    """The window a run asks for: the horizon defaults to ``today``, the cutoff to 180 days before it."""
    end = horizon_end or today
    if not EARLIEST + LOOKBACK <= end <= LATEST:
        raise ValueError(f"a churn window lies between {EARLIEST} and {LATEST}, not up to {end.isoformat()}")
    return ChurnWindow(cutoff or end - LOOKBACK, end)


def history_from_journal(
    member: str, movements: Sequence[Movement], cutoff: date, points_per_yuan: int, rules: TierRules
) -> MemberHistory:
    """The member's history; wallet figures (balance, redemptions, exchanges, tier) as at ``cutoff``.

    Purchases after the cutoff are kept, since they decide the label; the feature builder never
    looks past the cutoff.
    """
    rate = max(points_per_yuan, 1)
    purchases = tuple(
        Purchase(m.day, m.points * FEN_PER_YUAN // rate)
        for m in movements
        if m.kind is Kind.EARN and m.reason == "purchase"
    )
    upto = [m for m in movements if m.day <= cutoff]
    earned = sum(m.points for m in upto if m.points > 0)
    redeemed = -sum(m.points for m in upto if m.kind is Kind.REDEEM)
    spend = [(p.day, p.amount_fen) for p in purchases if p.day <= cutoff]
    tier = tier_for(rules, summarise(spend, cutoff, rules.window_days)).rank
    return MemberHistory(
        member=member,
        purchases=purchases,
        points_earned=earned,
        points_redeemed=redeemed,
        points_balance=sum(m.points for m in upto),
        exchanges=sum(1 for m in upto if m.reason in EXCHANGE_REASONS),
        tier=tier,
    )


def window_of(run_config: dict[str, bool | float | int | str]) -> ChurnWindow:
    """The churn window a run asks for."""
    end_text, cut_text = str(run_config.get("horizon-end", "")), str(run_config.get("cutoff", ""))
    return churn_window(
        date.fromisoformat(cut_text) if cut_text else None,
        date.fromisoformat(end_text) if end_text else None,
        datetime.now(UTC).date(),
    )
