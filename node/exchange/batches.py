"""A batch of exchanges between two nodes, in one transaction on each side and one log append.

The source sends many credits and cancels to one destination in one signed peer call
(:data:`BATCH_PATH`). Each item keeps its own quote, source signature and exchange id, and gets
its own answer. The destination settles the whole batch in one transaction: one write lock, one
commit and one fsync for all of them. Each item is still decided alone, so an item the destination
refuses never refuses the others. The source then records every answer in one transaction
(:func:`apply_outgoing`). Both sides append the batch's committed exchanges to their ``exchange``
log in one append.

Crash safety is that of a single exchange, item by item. A batch commits whole or not at all, and
each item is idempotent on its exchange id, so recovery's "resend what the state calls for" finishes
every item whatever point the crash reached.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

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
from node.exchange.store import (
    AlreadyLogged,
    DestinationSide,
    ExchangeInRow,
    ExchangeOutRow,
    Incoming,
    Outgoing,
    SourceSide,
    _incoming,
    _now,
    _outgoing,
)
from node.wallet.bulk import earn_many_in, locked_many

BATCH_PATH = "/v1/peer/exchanges/batch"
#: The most items one batch call may carry (the destination refuses more).
MAX_BATCH = 512


@dataclass(frozen=True)
class CreditItem:
    """A genuine credit request, with whether the destination will make it, before its transaction."""

    quote: Quote
    member: str | None
    quote_sig: str
    link_id: str
    reason: str | None = None  # why the destination will not credit it; None: it will

    @property
    def acceptable(self) -> bool:
        """Whether the destination credits it (unless the exchange id is already settled)."""
        return self.reason is None


@dataclass(frozen=True)
class CancelItem:
    """A cancel of exchange ``exchange_id`` from ``source``."""

    exchange_id: str
    source: str


def settle_incoming(
    side: DestinationSide, items: Sequence[CreditItem | CancelItem], today: date, expires_on: date
) -> list[Answer]:
    """Answer every item in one transaction: credits (a lot each) and tombstones, one answer per item.

    Items are decided in order against what is recorded, including what earlier items of the same
    batch wrote, so a repeated exchange id is answered as a retry would be.
    """
    for _ in range(3):  # PostgreSQL: another batch may insert one of these ids first; decide again
        try:
            return _settle(side, items, today, expires_on)
        except IntegrityError:
            continue
    return _settle(side, items, today, expires_on)


def _settle(
    side: DestinationSide, items: Sequence[CreditItem | CancelItem], today: date, expires_on: date
) -> list[Answer]:
    t = ExchangeInRow.__table__
    members = [i.member for i in items if isinstance(i, CreditItem) and i.acceptable and i.member]
    with locked_many(side.wallets, members) as conn:
        ids = sorted({_id(i) for i in items})
        recorded: dict[str, DestinationState] = {}
        for k in range(0, len(ids), 500):
            rows = conn.execute(select(t.c.exchange_id, t.c.state).where(t.c.exchange_id.in_(ids[k : k + 500])))
            recorded |= {r.exchange_id: DestinationState(r.state) for r in rows}
        answers, earns, rows_out = [], [], []
        now = _now()
        for item in items:
            if isinstance(item, CreditItem):
                answer = on_credit(recorded.get(item.quote.quote_id), item.acceptable)
                q = item.quote
                if answer.write is DestinationState.CREDITED:
                    assert item.member is not None
                    earns.append((item.member, q.points_received, "exchange_in", today, expires_on, q.quote_id))
                row = {
                    "exchange_id": q.quote_id,
                    "source": q.source,
                    "member": item.member if answer.write is DestinationState.CREDITED else None,
                    "quote": q.canonical().decode("ascii"),
                    "quote_sig": item.quote_sig,
                    "link_id": item.link_id,
                }
            else:
                answer = on_cancel(recorded.get(item.exchange_id))
                row = {"exchange_id": item.exchange_id, "source": item.source}
                row |= {"member": None, "quote": None, "quote_sig": None, "link_id": None}
            if answer.write is not None:
                recorded[row["exchange_id"]] = answer.write
                rows_out.append(row | {"state": answer.write.value, "at": now})
            answers.append(answer)
        earn_many_in(conn, earns)
        if rows_out:
            conn.execute(insert(t), rows_out)
    return answers


def _id(item: CreditItem | CancelItem) -> str:
    return item.quote.quote_id if isinstance(item, CreditItem) else item.exchange_id


def incoming_many(side: DestinationSide, exchange_ids: Sequence[str]) -> list[Incoming]:
    """The recorded incoming exchanges among ``exchange_ids``."""
    t = ExchangeInRow.__table__
    ids = sorted(set(exchange_ids))
    found: list[Incoming] = []
    with side.engine.connect() as conn:
        for k in range(0, len(ids), 500):
            found += [_incoming(r) for r in conn.execute(select(t).where(t.c.exchange_id.in_(ids[k : k + 500])))]
    return found


def apply_outgoing(
    side: SourceSide, changes: Sequence[tuple[Outgoing, SourceEvent, str | None]]
) -> list[tuple[Step, Outgoing]]:
    """Record what the destination answered for many exchanges in one transaction (refunds included).

    ``changes`` holds each exchange with its event and, for a credit, the destination's receipt
    (checked by the caller). Returns each exchange's step and record as it now stands, in order.
    """
    t = ExchangeOutRow.__table__
    with locked_many(side.wallets, [o.member for o, _, _ in changes]) as conn:
        ids = [o.exchange_id for o, _, _ in changes]
        current = {
            r.exchange_id: _outgoing(r) for r in conn.execute(select(t).where(t.c.exchange_id.in_(sorted(set(ids)))))
        }
        results, updates = [], []
        now = _now()
        for out, event, receipt in changes:
            before = current[out.exchange_id]
            step = source_step(before.state, event)
            if Action.REFUND in step.actions:
                side.refund_in(conn, before)
            after = before
            if step.state is not before.state:
                sig = before.destination_sig
                if step.state is SourceState.CONFIRMED:
                    if receipt is None:
                        raise ValueError("a confirmed exchange needs the destination's receipt")
                    sig = receipt
                after = replace(before, state=step.state, destination_sig=sig)
                updates.append({"xid": out.exchange_id, "st": step.state.value, "sig": sig, "at": now})
                current[out.exchange_id] = after
            results.append((step, after))
        if updates:
            conn.execute(
                update(t)
                .where(t.c.exchange_id == bindparam("xid"))
                .values(state=bindparam("st"), destination_sig=bindparam("sig"), updated_at=bindparam("at")),
                updates,
            )
    return results


def logged_many(engine: Any, table: str, exchange_ids: Sequence[str]) -> Callable[[Any, int], None]:
    """A hook for ``Log.append(then=)`` recording where a batch's entries landed, in the append's
    transaction; :class:`AlreadyLogged` if any of them was recorded meanwhile (the append rolls back)."""
    p = "?" if engine.dialect.paramstyle == "qmark" else "%s"
    sql = f"UPDATE {table} SET logged_index = {p} WHERE exchange_id = {p} AND logged_index IS NULL"

    def mark(cur: Any, first: int) -> None:
        for i, exchange_id in enumerate(exchange_ids):
            cur.execute(sql, (first + i, exchange_id))
            if cur.rowcount != 1:
                raise AlreadyLogged(exchange_id)

    return mark
