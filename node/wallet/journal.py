"""Points wallets as an append-only journal of lots (pure logic; storage in :mod:`node.wallet_store`).

Points arrive in **lots**, each with the day it was earned and the day it expires. Every movement
is a journal entry with a reason code; an entry that takes points away says which lots it took
them from (its allocations). A lot's remaining points, and so the balance, are always derived from
the journal: never stored, never updated.

Redemptions and negative adjustments take the oldest-expiring points first (the member loses
least to expiry); expiry takes what is left of every lot past its day.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import NamedTuple

from node.core.refusals import Refused

MAX_POINTS = 10**12


class Kind(StrEnum):
    """What a journal entry does."""

    EARN = "earn"  # a new lot
    REDEEM = "redeem"  # points spent by the member
    EXPIRE = "expire"  # points past their lot's expiry
    ADJUST = "adjust"  # an operator's correction, up (a new lot) or down (taken like a redemption)


#: Reason codes each kind accepts (a reason always says why, in a word the reports group by).
REASONS: dict[Kind, frozenset[str]] = {
    Kind.EARN: frozenset({"purchase", "exchange_in", "promotion", "exchange_refund"}),
    Kind.REDEEM: frozenset({"reward", "exchange_out"}),
    Kind.EXPIRE: frozenset({"expiry"}),
    Kind.ADJUST: frozenset({"goodwill", "correction", "fraud_reversal"}),
}


class WalletError(Refused):
    """A movement the wallet refuses (``insufficient_points``, ``bad_amount``, ``bad_expiry``…)."""


@dataclass(frozen=True)
class Lot:
    """Points earned together, expiring together."""

    lot_id: str
    points: int
    earned_on: date
    expires_on: date


@dataclass(frozen=True)
class Entry:
    """One journal entry. ``points`` is signed: positive for earn (and upward adjust), negative otherwise."""

    entry_id: str
    kind: Kind
    reason: str
    points: int
    at: datetime
    lot: Lot | None = None  # the lot an earn (or upward adjust) creates
    allocations: tuple[tuple[str, int], ...] = ()  # (lot_id, points taken) for everything that takes
    ref: str | None = None  # an external id (purchase, exchange) that makes the entry idempotent


class Movement(NamedTuple):
    """A journal entry reduced to what churn features need: no ids, no lots, one day."""

    kind: Kind
    reason: str
    points: int  # signed, as in :class:`Entry`
    day: date  # an earn's earning day (imports carry the purchase day); otherwise the day it was written


def check_amount(points: int) -> None:
    """Refuse anything but a whole, positive, plausible number of points."""
    if isinstance(points, bool) or not isinstance(points, int) or not 0 < points <= MAX_POINTS:
        raise WalletError("bad_amount", f"points must be a whole number from 1 to {MAX_POINTS:,}")


def check_reason(kind: Kind, reason: str) -> None:
    """Refuse a reason code the kind does not accept."""
    if reason not in REASONS[kind]:
        raise WalletError("bad_reason", f"{kind.value} takes a reason among {sorted(REASONS[kind])}, not {reason!r}")


Taken = Iterable[tuple[str, int]]  # (lot_id, points) of every allocation in the journal


def allocations_of(entries: Iterable[Entry]) -> list[tuple[str, int]]:
    """Every allocation of a journal, for :func:`remaining`."""
    return [a for e in entries for a in e.allocations]


def remaining(lots: Iterable[Lot], taken: Taken) -> dict[str, int]:
    """Points left in each lot after every allocation in the journal."""
    left = {lot.lot_id: lot.points for lot in lots}
    for lot_id, n in taken:
        left[lot_id] -= n
    return left


def balance(lots: Sequence[Lot], taken: Taken, today: date) -> int:
    """Points the member can use today: what is left in every lot not yet expired."""
    left = remaining(lots, taken)
    return sum(left[lot.lot_id] for lot in lots if lot.expires_on >= today)


def take(lots: Sequence[Lot], taken: Taken, points: int, today: date) -> tuple[tuple[str, int], ...]:
    """Allocate ``points`` from usable lots, oldest-expiring first, or raise (insufficient)."""
    check_amount(points)
    left = remaining(lots, taken)
    usable = sorted((lot for lot in lots if lot.expires_on >= today and left[lot.lot_id] > 0), key=_fifo)
    allocations: list[tuple[str, int]] = []
    need = points
    for lot in usable:
        if need == 0:
            break
        n = min(need, left[lot.lot_id])
        allocations.append((lot.lot_id, n))
        need -= n
    if need:
        have = points - need
        raise WalletError("insufficient_points", f"the wallet holds {have:,} usable points, not {points:,}")
    return tuple(allocations)


def expiring(lots: Sequence[Lot], taken: Taken, today: date) -> tuple[tuple[str, int], ...]:
    """What expiry takes today: the rest of every lot whose expiry day has passed."""
    left = remaining(lots, taken)
    return tuple(
        (lot.lot_id, left[lot.lot_id])
        for lot in sorted(lots, key=_fifo)
        if lot.expires_on < today and left[lot.lot_id] > 0
    )


def _fifo(lot: Lot) -> tuple[date, date, str]:
    return (lot.expires_on, lot.earned_on, lot.lot_id)
