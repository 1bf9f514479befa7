"""Both sides of an exchange in the database: the records, and the hold that starts an exchange.

The source's hold (points taken from the wallet) and its ``held`` record are one transaction. The
transitions after it (a credit or a tombstone at the destination, a confirmation or a refund at the
source) are written a batch at a time by :mod:`node.exchange.batches`, each with its wallet movement
in the same transaction. At the destination a tombstone is a row with the same primary key as a
credit, so a credit and a cancel racing for one exchange id cannot both win. A crash therefore
leaves every exchange in a state :func:`node.exchange.protocol.pending_action` knows how to finish.
Where each exchange sits on the ``exchange`` log is recorded in the log append's own transaction
(``logged_index``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import BigInteger, Connection, Text, insert, select
from sqlmodel import Column, Field, SQLModel

from node.exchange.protocol import (
    DestinationState,
    SourceEvent,
    SourceState,
)
from node.exchange.quotes import Quote
from node.wallet.bulk import locked_many
from node.wallet.journal import WalletError
from node.wallet.store import WalletStore


class ExchangeOutRow(SQLModel, table=True):
    """An exchange this node is the source of."""

    __tablename__ = "exchange_out"
    exchange_id: str = Field(primary_key=True, max_length=32)
    member: str = Field(index=True, max_length=64)
    destination: str = Field(max_length=200)
    link_id: str = Field(max_length=64)
    quote: str = Field(sa_column=Column(Text, nullable=False))  # the signed quote's JSON
    quote_sig: str = Field(max_length=200)
    state: str = Field(index=True, max_length=16)
    created_at: datetime
    updated_at: datetime
    destination_sig: str | None = Field(default=None, max_length=200)  # the destination's receipt, once credited
    logged_index: int | None = Field(default=None, sa_type=BigInteger)  # where the exchange log holds it


class ExchangeInRow(SQLModel, table=True):
    """An exchange this node is the destination of: credited, or tombstoned for good."""

    __tablename__ = "exchange_in"
    exchange_id: str = Field(primary_key=True, max_length=32)
    source: str = Field(max_length=200)
    member: str | None = Field(default=None, max_length=64)
    state: str = Field(max_length=16)
    quote: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    at: datetime
    quote_sig: str | None = Field(default=None, max_length=200)
    link_id: str | None = Field(default=None, max_length=64)
    logged_index: int | None = Field(default=None, sa_type=BigInteger)


TABLES = [ExchangeOutRow.__table__, ExchangeInRow.__table__]


def _now() -> datetime:
    return datetime.now(UTC)


class AlreadyLogged(Exception):
    """Another thread put this exchange on the log first: the append is rolled back."""


@dataclass(frozen=True)
class Hold:
    """A member's accepted quote, to be held: the points taken and the exchange recorded."""

    member: str
    quote: Quote
    quote_sig: str
    link_id: str


@dataclass(frozen=True)
class Outgoing:
    """An outgoing exchange as recorded."""

    exchange_id: str
    member: str
    destination: str
    link_id: str
    quote: Quote
    quote_sig: str
    state: SourceState
    destination_sig: str | None = None
    logged_index: int | None = None


def _outgoing(row: object) -> Outgoing:
    r = row._mapping  # type: ignore[attr-defined]
    return Outgoing(
        r["exchange_id"],
        r["member"],
        r["destination"],
        r["link_id"],
        Quote.from_json(json.loads(r["quote"])),
        r["quote_sig"],
        SourceState(r["state"]),
        r["destination_sig"],
        r["logged_index"],
    )


class SourceSide:
    """Exchanges leaving this node."""

    def __init__(self, wallets: WalletStore) -> None:
        self.wallets = wallets
        self.engine = wallets.engine

    def hold(self, member: str, quote: Quote, quote_sig: str, link_id: str, today: date) -> Outgoing:
        """Take the points and record the exchange as held, in one transaction (idempotent on the quote id)."""
        (held,) = self.hold_many([Hold(member, quote, quote_sig, link_id)], today)
        if isinstance(held, WalletError):
            raise held
        return held

    def hold_many(self, holds: Sequence[Hold], today: date) -> list[Outgoing | WalletError]:
        """Many holds in one transaction (one commit): each held, or refused alone (``insufficient_points``).

        A refused hold writes nothing, so it never undoes the others; each is idempotent on its quote id.
        """
        t = ExchangeOutRow.__table__
        results: list[Outgoing | WalletError] = []
        with locked_many(self.wallets, [h.member for h in holds]) as conn:
            ids = sorted({h.quote.quote_id for h in holds})
            held = {r.exchange_id: _outgoing(r) for r in conn.execute(select(t).where(t.c.exchange_id.in_(ids)))}
            rows = []
            for h in holds:
                q = h.quote
                if q.quote_id in held:
                    results.append(held[q.quote_id])
                    continue
                try:
                    self.wallets.redeem_in(conn, h.member, q.points_given, "exchange_out", today, ref=q.quote_id)
                except WalletError as exc:  # raised before anything is written for this hold
                    results.append(exc)
                    continue
                now = _now()
                rows.append(
                    {
                        "exchange_id": q.quote_id,
                        "member": h.member,
                        "destination": q.destination,
                        "link_id": h.link_id,
                        "quote": q.canonical().decode("ascii"),  # the canonical bytes the source signature covers
                        "quote_sig": h.quote_sig,
                        "state": SourceState.HELD.value,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                held[q.quote_id] = Outgoing(
                    q.quote_id, h.member, q.destination, h.link_id, q, h.quote_sig, SourceState.HELD
                )
                results.append(held[q.quote_id])
            if rows:
                conn.execute(insert(t), rows)
        return results

    def get(self, exchange_id: str) -> Outgoing:
        """The exchange, or ``LookupError``."""
        t = ExchangeOutRow.__table__
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.exchange_id == exchange_id)).first()
        if row is None:
            raise LookupError(f"no outgoing exchange {exchange_id}")
        return _outgoing(row)

    def refund_in(self, conn: Connection, ex: Outgoing) -> None:
        """Give a held exchange's points back, inside a transaction holding the member's lock."""
        # the points come back in lots with the expiry they had, so a refund never extends their life
        hold = self.wallets.entry_with_ref(conn, ex.member, ex.exchange_id)
        assert hold is not None  # the hold and the held record were written in one transaction
        lots = {lot.lot_id: lot for lot in self.wallets.lots_of(conn, hold)}
        for lot_id, points in hold.allocations:
            lot = lots[lot_id]
            self.wallets.earn_in(
                conn,
                ex.member,
                points,
                "exchange_refund",
                lot.earned_on,
                lot.expires_on,
                ref=f"{ex.exchange_id}:refund:{lot_id}",
            )

    def unfinished(self) -> list[Outgoing]:
        """Exchanges recovery must resume (held or cancelling), oldest first."""
        t = ExchangeOutRow.__table__
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t)
                .where(t.c.state.in_((SourceState.HELD.value, SourceState.CANCELLING.value)))
                .order_by(t.c.created_at)
            ).all()
        return [_outgoing(r) for r in rows]

    def unlogged(self) -> list[Outgoing]:
        """Confirmed exchanges not yet on the exchange log (a crash came between the two commits)."""
        t = ExchangeOutRow.__table__
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t).where(t.c.state == SourceState.CONFIRMED.value, t.c.logged_index.is_(None))
            ).all()
        return [_outgoing(r) for r in rows]


@dataclass(frozen=True)
class Incoming:
    """An incoming exchange as recorded."""

    exchange_id: str
    source: str
    member: str | None
    state: DestinationState
    quote: Quote | None
    quote_sig: str | None
    link_id: str | None
    logged_index: int | None
    at: datetime


def _incoming(row: object) -> Incoming:
    r = row._mapping  # type: ignore[attr-defined]
    quote = Quote.from_json(json.loads(r["quote"])) if r["quote"] else None
    return Incoming(
        r["exchange_id"],
        r["source"],
        r["member"],
        DestinationState(r["state"]),
        quote,
        r["quote_sig"],
        r["link_id"],
        r["logged_index"],
        r["at"],
    )


class DestinationSide:
    """Exchanges arriving at this node."""

    def __init__(self, wallets: WalletStore) -> None:
        self.wallets = wallets
        self.engine = wallets.engine

    def state(self, exchange_id: str) -> DestinationState | None:
        """What is recorded for an exchange id."""
        t = ExchangeInRow.__table__
        with self.engine.connect() as conn:
            value = conn.execute(select(t.c.state).where(t.c.exchange_id == exchange_id)).scalar_one_or_none()
        return None if value is None else DestinationState(value)

    def get(self, exchange_id: str) -> Incoming | None:
        """The recorded incoming exchange, if any."""
        t = ExchangeInRow.__table__
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.exchange_id == exchange_id)).first()
        return None if row is None else _incoming(row)

    def unlogged(self) -> list[Incoming]:
        """Credited exchanges not yet on the exchange log."""
        t = ExchangeInRow.__table__
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t).where(t.c.state == DestinationState.CREDITED.value, t.c.logged_index.is_(None))
            ).all()
        return [_incoming(r) for r in rows]


__all__ = ["AlreadyLogged", "DestinationSide", "Hold", "Incoming", "Outgoing", "SourceEvent", "SourceSide"]
