"""Both sides of an exchange in the database: each protocol transition and its wallet movement commit together.

The source's hold (points taken from the wallet) and its ``held`` record are one transaction; so
are a refund and the ``cancelled`` state. At the destination, the credit (a new lot) and the
``credited`` record are one transaction, and a tombstone is a row with the same primary key, so a
credit and a cancel racing for one exchange id cannot both win: the second insert fails and is
answered from what the first wrote. A crash therefore leaves every exchange in a state
:func:`node.exchange.protocol.pending_action` knows how to finish. Where each exchange sits on the
``exchange`` log is recorded in the log append's own transaction (:meth:`SourceSide.logged_at`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import BigInteger, Connection, Text, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Column, Field, SQLModel

from node.exchange.protocol import (
    Action,
    Answer,
    DestinationState,
    SourceEvent,
    SourceState,
    Step,
    on_cancel,
    on_credit,
    source_step,
)
from node.exchange.quotes import Quote
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


def _logged_at(engine: Any, table: str, exchange_id: str) -> Callable[[Any, int], None]:
    """A hook for ``Log.append(then=)``: record the entry's index in ``table``, inside the append's
    transaction, on the driver's cursor; :class:`AlreadyLogged` if it was recorded meanwhile."""
    p = "?" if engine.dialect.paramstyle == "qmark" else "%s"
    sql = f"UPDATE {table} SET logged_index = {p} WHERE exchange_id = {p} AND logged_index IS NULL"

    def mark(cur: Any, index: int) -> None:
        cur.execute(sql, (index, exchange_id))
        if cur.rowcount != 1:
            raise AlreadyLogged(exchange_id)

    return mark


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
        t = ExchangeOutRow.__table__
        with self.wallets.locked(member) as conn:
            row = conn.execute(select(t).where(t.c.exchange_id == quote.quote_id)).first()
            if row is not None:
                return _outgoing(row)
            self.wallets.redeem_in(conn, member, quote.points_given, "exchange_out", today, ref=quote.quote_id)
            now = _now()
            values = {
                "exchange_id": quote.quote_id,
                "member": member,
                "destination": quote.destination,
                "link_id": link_id,
                "quote": quote.canonical().decode("ascii"),  # the canonical bytes the source signature covers
                "quote_sig": quote_sig,
                "state": SourceState.HELD.value,
                "created_at": now,
                "updated_at": now,
            }
            conn.execute(insert(t).values(**values))
        return Outgoing(quote.quote_id, member, quote.destination, link_id, quote, quote_sig, SourceState.HELD)

    def get(self, exchange_id: str) -> Outgoing:
        """The exchange, or ``LookupError``."""
        t = ExchangeOutRow.__table__
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.exchange_id == exchange_id)).first()
        if row is None:
            raise LookupError(f"no outgoing exchange {exchange_id}")
        return _outgoing(row)

    def apply(self, exchange_id: str, event: SourceEvent, destination_sig: str | None = None) -> Step:
        """:meth:`apply_and_get` without the record."""
        return self.apply_and_get(exchange_id, event, destination_sig)[0]

    def apply_and_get(
        self, exchange_id: str, event: SourceEvent, destination_sig: str | None = None, member: str | None = None
    ) -> tuple[Step, Outgoing]:
        """Record what the destination answered (or a timeout); a refund commits with the new state.

        A credit is recorded with the destination's receipt (``destination_sig``), which the
        caller has checked: the exchange log entry needs it. Returns the step and the record as
        it now stands.
        """
        member = member or self.get(exchange_id).member
        t = ExchangeOutRow.__table__
        with self.wallets.locked(member) as conn:
            current = _outgoing(conn.execute(select(t).where(t.c.exchange_id == exchange_id)).first())
            step = source_step(current.state, event)
            if Action.REFUND in step.actions:
                self._refund(conn, current)
            if step.state is not current.state:
                values: dict[str, object] = {"state": step.state.value, "updated_at": _now()}
                if step.state is SourceState.CONFIRMED:
                    if destination_sig is None:
                        raise ValueError("a confirmed exchange needs the destination's receipt")
                    values["destination_sig"] = destination_sig
                conn.execute(update(t).where(t.c.exchange_id == exchange_id).values(**values))
                current = replace(
                    current, state=step.state, destination_sig=values.get("destination_sig", current.destination_sig)
                )
        return step, current

    def _refund(self, conn: Connection, ex: Outgoing) -> None:
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

    def logged_at(self, exchange_id: str) -> Callable[[Any, int], None]:
        """The hook that records where the exchange log holds this exchange (see :func:`_logged_at`)."""
        return _logged_at(self.engine, ExchangeOutRow.__tablename__, exchange_id)


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

    def logged_at(self, exchange_id: str) -> Callable[[Any, int], None]:
        """The hook that records where the exchange log holds this exchange (see :func:`_logged_at`)."""
        return _logged_at(self.engine, ExchangeInRow.__tablename__, exchange_id)

    def credit(
        self,
        quote: Quote,
        member: str | None,
        acceptable: bool,
        today: date,
        expires_on: date,
        *,
        quote_sig: str | None = None,
        link_id: str | None = None,
    ) -> Answer:
        """Answer a credit request: credit once (lot and record in one transaction), or refuse for good.

        ``member`` (the pseudonym the link id names here) may be None only when refusing.
        """
        if acceptable and member is None:
            raise ValueError("a credit needs the member it goes to")
        for _ in range(2):  # a concurrent cancel may insert first: answer from what it wrote
            try:
                return self._credit(quote, member, acceptable, today, expires_on, quote_sig, link_id)
            except IntegrityError:
                continue
        return on_credit(self.state(quote.quote_id), acceptable)

    @contextmanager
    def _transaction(self, member: str | None) -> Iterator[Connection]:
        if member is not None:
            with self.wallets.locked(member) as conn:
                yield conn
            return
        with self.engine.connect() as conn, conn.execution_options(ledger_write=True).begin():
            yield conn

    def _credit(
        self,
        quote: Quote,
        member: str | None,
        acceptable: bool,
        today: date,
        expires_on: date,
        quote_sig: str | None,
        link_id: str | None,
    ) -> Answer:
        t = ExchangeInRow.__table__
        with self._transaction(member if acceptable else None) as conn:
            existing = conn.execute(select(t.c.state).where(t.c.exchange_id == quote.quote_id)).scalar_one_or_none()
            answer = on_credit(None if existing is None else DestinationState(existing), acceptable)
            if answer.write is DestinationState.CREDITED:
                assert member is not None
                self.wallets.earn_in(
                    conn, member, quote.points_received, "exchange_in", today, expires_on, ref=quote.quote_id
                )
            if answer.write is not None:
                conn.execute(
                    insert(t).values(
                        exchange_id=quote.quote_id,
                        source=quote.source,
                        member=member if answer.write is DestinationState.CREDITED else None,
                        state=answer.write.value,
                        quote=quote.canonical().decode("ascii"),
                        quote_sig=quote_sig,
                        link_id=link_id,
                        at=_now(),
                    )
                )
        return answer

    def cancel(self, exchange_id: str, source: str) -> Answer:
        """Answer a cancel request: a credit already made stands; otherwise leave a tombstone."""
        t = ExchangeInRow.__table__
        for _ in range(2):
            try:
                with self.engine.connect() as conn, conn.execution_options(ledger_write=True).begin():
                    existing = conn.execute(
                        select(t.c.state).where(t.c.exchange_id == exchange_id)
                    ).scalar_one_or_none()
                    answer = on_cancel(None if existing is None else DestinationState(existing))
                    if answer.write is not None:
                        conn.execute(
                            insert(t).values(
                                exchange_id=exchange_id, source=source, state=answer.write.value, at=_now()
                            )
                        )
                    return answer
            except IntegrityError:  # a credit landed meanwhile: answer from it
                continue
        return on_cancel(self.state(exchange_id))


__all__ = ["AlreadyLogged", "DestinationSide", "Incoming", "Outgoing", "SourceEvent", "SourceSide"]
