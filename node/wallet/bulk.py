"""Many earns in one transaction: bulk earning from tills and onboarding a brand's history.

The accounts of every member in the batch are opened if new and locked in sorted order (so two
batches never wait on each other in a cycle); then each table gets one insert for the whole batch.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date

from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import IntegrityError

from node.wallet.journal import Entry, Kind, Lot
from node.wallet.store import WalletAccount, WalletEntryRow, WalletLotRow, WalletStore, _now, check_earn

Earn = tuple[str, int, str, date, date, str | None]  # (member, points, reason, earned_on, expires_on, ref)


def import_earns(wallets: WalletStore, earns: Sequence[Earn]) -> int:
    """Bulk-load earns in one transaction.

    For onboarding a brand's history before the node serves: an earn whose ``ref`` the member
    already has makes the whole batch fail (nothing half-loaded). Returns how many entries were written.
    """
    with locked_many(wallets, (e[0] for e in earns)) as conn:
        return len(earn_many_in(conn, earns))


@contextmanager
def locked_many(wallets: WalletStore, members: Iterable[str]) -> Iterator[Connection]:
    """A write transaction holding the account locks of ``members`` (opened if new, taken in sorted order)."""
    wanted = sorted(set(members))
    t = WalletAccount.__table__
    with wallets.engine.connect() as conn:
        conn.execution_options(ledger_write=True)  # SQLite: BEGIN IMMEDIATE takes the write lock
        with conn.begin():
            known: set[str] = set()
            for i in range(0, len(wanted), 500):
                known |= set(conn.execute(select(t.c.member).where(t.c.member.in_(wanted[i : i + 500]))).scalars())
            fresh = [m for m in wanted if m not in known]
            try:
                with conn.begin_nested():
                    if fresh:
                        conn.execute(insert(t), [{"member": m, "opened_at": _now()} for m in fresh])
            except IntegrityError:  # some opened concurrently (PostgreSQL): open the rest one by one
                for m in fresh:
                    try:
                        with conn.begin_nested():
                            conn.execute(insert(t).values(member=m, opened_at=_now()))
                    except IntegrityError:
                        pass
            for i in range(0, len(wanted), 500):
                chunk = wanted[i : i + 500]
                conn.execute(select(t.c.member).where(t.c.member.in_(chunk)).order_by(t.c.member).with_for_update())
            yield conn


def earn_many_in(conn: Connection, earns: Sequence[Earn]) -> list[Entry]:
    """Earns inside :func:`locked_many`, one statement per table; the caller made sure no ``ref`` is used."""
    now = _now()
    made, entries, lots = [], [], []
    for member, points, reason, earned_on, expires_on, ref in earns:
        check_earn(points, reason, earned_on, expires_on, Kind.EARN)
        lot = Lot(uuid.uuid4().hex, points, earned_on, expires_on)
        entry = Entry(uuid.uuid4().hex, Kind.EARN, reason, points, now, lot=lot, ref=ref)
        made.append(entry)
        common = {"entry_id": entry.entry_id, "member": member, "points": points}
        entries.append(common | {"kind": Kind.EARN.value, "reason": reason, "at": now, "ref": ref})
        lots.append(common | {"lot_id": lot.lot_id, "earned_on": earned_on, "expires_on": expires_on})
    if entries:
        conn.execute(insert(WalletEntryRow.__table__), entries)
        conn.execute(insert(WalletLotRow.__table__), lots)
    return made
