"""Purchases that earned points, once per node: a till's purchase id is unique across the brand.

The same purchase id again, for the same member and amount (and day, when the till states one), is
a retry and gets the first answer. Anything else is a conflict (``idempotency_conflict``): two tills
gave one id to two sales, or a client reused an id, and answering the first silently would hide a
lost sale. Purchases commit a batch at a time (:meth:`Purchases.earn_many`): a till's batch, or the
single purchases of concurrent requests gathered by group commit. Each row and the points it earned
commit in one transaction under every member's wallet lock, with a result per item.

Purchases earned before this table existed were copied from the journal by migration 0009
without their amount, so a retry of one of those is judged by its member alone. History loaded in
bulk with :func:`node.wallet.bulk.import_earns` (onboarding, before the node serves)
is not recorded here: its ids are the operator's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel

from node.wallet.bulk import earn_many_in, locked_many
from node.wallet.journal import Entry, WalletError
from node.wallet.store import WalletStore

#: How far back a purchase may be dated (a late upload from a till), and how far ahead (time zones).
PAST = timedelta(days=366 * 10)
AHEAD = timedelta(days=1)


class PurchaseRow(SQLModel, table=True):
    """A purchase that earned points: which member, how much, when, and the journal entry it made."""

    __tablename__ = "purchase"
    purchase_id: str = Field(primary_key=True, max_length=100)
    member: str = Field(index=True, max_length=64)
    amount_fen: int | None = Field(default=None, sa_type=BigInteger)  # None: copied from the journal
    day: date
    entry_id: str = Field(max_length=32)
    at: datetime


@dataclass(frozen=True)
class Purchase:
    """A purchase as a till reports it."""

    purchase_id: str
    amount_fen: int
    day: date
    day_stated: bool = True  # False: the request named no day, so a retry on a later day is still the same sale


def check_business_day(day: date, today: date) -> None:
    """Refuse a purchase dated outside a sane window around ``today`` (``day_out_of_range``).

    The window also keeps every date computed from ``day`` (a lot's expiry, up to ten years on)
    inside the calendar: a day in year 9999 would overflow it.
    """
    if not today - PAST <= day <= today + AHEAD:
        raise WalletError(
            "day_out_of_range",
            f"a purchase day lies between {today - PAST} and {today + AHEAD}, not {day.isoformat()}",
        )


class Purchases:
    """The purchases of one node, each earning its points once (also a rights-request data source)."""

    name = "purchases"  # the section of an access export

    def __init__(self, wallets: WalletStore) -> None:
        self.wallets = wallets

    def export_member(self, member: str) -> list[dict[str, object]]:
        """The member's purchases, for an access request: id, amount, day."""
        t = PurchaseRow.__table__
        with self.wallets.engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c.member == member).order_by(t.c.day, t.c.purchase_id)).all()
        return [{"purchase_id": r.purchase_id, "amount_fen": r.amount_fen, "day": r.day.isoformat()} for r in rows]

    def erase_member(self, member: str) -> int:
        """Erasure: the member's purchases go with their wallet; return how many."""
        t = PurchaseRow.__table__
        with self.wallets.engine.connect() as conn, conn.execution_options(ledger_write=True).begin():
            return conn.execute(delete(t).where(t.c.member == member)).rowcount

    def earn_many(self, items: Sequence[tuple[str, Purchase, int, date]]) -> list[Entry | WalletError]:
        """Credit ``(member, purchase, points, expires_on)`` items in one transaction, each once.

        One result per item, in order: the entry (new, or the one a retry of the same purchase made),
        or the ``idempotency_conflict`` of an id already used for another member, amount or day.
        One item refused never refuses the others.
        """
        for _ in range(2):  # another batch's first use of an id committed first (PostgreSQL): decide again
            try:
                return self._earn_many(items)
            except IntegrityError:
                continue
        return self._earn_many(items)

    def _earn_many(self, items: Sequence[tuple[str, Purchase, int, date]]) -> list[Entry | WalletError]:
        t = PurchaseRow.__table__
        results: list[Entry | WalletError | None] = [None] * len(items)
        with locked_many(self.wallets, (member for member, *_ in items)) as conn:
            ids = sorted({p.purchase_id for _, p, _, _ in items})
            recorded: dict[str, Any] = {}
            for i in range(0, len(ids), 500):
                for row in conn.execute(select(t).where(t.c.purchase_id.in_(ids[i : i + 500]))):
                    recorded[row.purchase_id] = row
            first_in_batch: dict[str, int] = {}
            fresh: list[int] = []
            for pos, (member, purchase, _, _) in enumerate(items):
                row = recorded.get(purchase.purchase_id)
                if row is not None:
                    if _conflicts(row.member, row.amount_fen, row.day, member, purchase):
                        results[pos] = _conflict(purchase)
                    else:
                        entry = self.wallets.entry_with_ref(conn, member, f"purchase:{purchase.purchase_id}")
                        assert entry is not None  # the row and its entry were committed together
                        results[pos] = entry
                elif purchase.purchase_id in first_in_batch:
                    first = items[first_in_batch[purchase.purchase_id]]
                    if _conflicts(first[0], first[1].amount_fen, first[1].day, member, purchase):
                        results[pos] = _conflict(purchase)
                else:
                    first_in_batch[purchase.purchase_id] = pos
                    fresh.append(pos)
            earns = [
                (
                    items[pos][0],
                    items[pos][2],
                    "purchase",
                    items[pos][1].day,
                    items[pos][3],
                    f"purchase:{items[pos][1].purchase_id}",
                )
                for pos in fresh
            ]
            now = datetime.now(UTC)
            made = earn_many_in(conn, earns)
            rows = []
            for pos, entry in zip(fresh, made, strict=True):
                member, purchase, _, _ = items[pos]
                results[pos] = entry
                rows.append(
                    {
                        "purchase_id": purchase.purchase_id,
                        "member": member,
                        "amount_fen": purchase.amount_fen,
                        "day": purchase.day,
                        "entry_id": entry.entry_id,
                        "at": now,
                    }
                )
            if rows:
                conn.execute(insert(t), rows)
        for pos, (_, purchase, _, _) in enumerate(items):  # a repeat within the batch gets its first's entry
            if results[pos] is None:
                results[pos] = results[first_in_batch[purchase.purchase_id]]
        return [r for r in results if r is not None]


def _conflicts(member: str, amount_fen: int | None, day: date, wanted_member: str, purchase: Purchase) -> bool:
    """Whether an id already recorded (``member``, ``amount_fen``, ``day``) is another sale than ``purchase``."""
    other_day = purchase.day_stated and day != purchase.day
    return member != wanted_member or amount_fen not in (None, purchase.amount_fen) or other_day


def _conflict(purchase: Purchase) -> WalletError:
    return WalletError(
        "idempotency_conflict",
        f"purchase {purchase.purchase_id} was already recorded for another member, amount or day",
    )
