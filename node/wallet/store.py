"""Wallets in the database: the journal, its lots and allocations, and movements that never overdraw.

Every movement runs in one write transaction that first locks the member's account row (SQLite
takes the database write lock at ``BEGIN IMMEDIATE``; PostgreSQL ``SELECT ... FOR UPDATE``), then
reads the member's lots and allocations, plans with :mod:`node.wallet`, and appends. Two
redemptions of one wallet therefore serialise, and neither can spend points the other took.
An entry with a ``ref`` (a purchase id, an exchange id) is recorded at most once per member.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime

from sqlalchemy import BigInteger, Connection, Engine, UniqueConstraint, delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel

from node.wallet import journal as wallet
from node.wallet.journal import Entry, Kind, Lot, Movement, WalletError


class WalletAccount(SQLModel, table=True):
    """One row per member wallet: the row movements lock."""

    __tablename__ = "wallet_account"
    member: str = Field(primary_key=True, max_length=64)
    opened_at: datetime


class WalletEntryRow(SQLModel, table=True):
    """One journal entry (never updated or deleted)."""

    __tablename__ = "wallet_entry"
    __table_args__ = (UniqueConstraint("member", "ref", name="uq_wallet_entry_member_ref"),)
    entry_id: str = Field(primary_key=True, max_length=32)
    member: str = Field(index=True, max_length=64)
    kind: str = Field(max_length=16)
    reason: str = Field(max_length=32)
    points: int = Field(sa_type=BigInteger)
    at: datetime
    ref: str | None = Field(default=None, max_length=100)


class WalletLotRow(SQLModel, table=True):
    """A lot an earn (or upward adjust) created."""

    __tablename__ = "wallet_lot"
    lot_id: str = Field(primary_key=True, max_length=32)
    member: str = Field(index=True, max_length=64)
    entry_id: str = Field(max_length=32)
    points: int = Field(sa_type=BigInteger)
    earned_on: date
    expires_on: date


class WalletAllocationRow(SQLModel, table=True):
    """Points an entry took from a lot."""

    __tablename__ = "wallet_allocation"
    entry_id: str = Field(primary_key=True, max_length=32)
    lot_id: str = Field(primary_key=True, max_length=32)
    member: str = Field(index=True, max_length=64)
    points: int = Field(sa_type=BigInteger)


TABLES = [t.__table__ for t in (WalletAccount, WalletEntryRow, WalletLotRow, WalletAllocationRow)]


def _now() -> datetime:
    return datetime.now(UTC)


def check_earn(points: int, reason: str, earned_on: date, expires_on: date, kind: Kind) -> None:
    """Refuse an earn the journal must never hold (bad amount, reason or expiry)."""
    wallet.check_amount(points)
    wallet.check_reason(kind, reason)
    if expires_on <= earned_on:
        raise WalletError("bad_expiry", "a lot expires after the day it is earned")


class WalletStore:
    """Members' wallets on one database (also a rights-request data source, named ``wallet``)."""

    name = "wallet"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create_schema(self) -> None:
        """Create the tables if missing (nodes use the Alembic migrations instead)."""
        SQLModel.metadata.create_all(self.engine, tables=TABLES)

    @contextmanager
    def locked(self, member: str) -> Iterator[Connection]:
        """A write transaction holding the member's account lock (for movements composed with other writes)."""
        t = WalletAccount.__table__
        with self.engine.connect() as conn:
            conn.execution_options(ledger_write=True)  # SQLite: BEGIN IMMEDIATE takes the write lock
            with conn.begin():
                found = conn.execute(select(t.c.member).where(t.c.member == member).with_for_update()).first()
                if found is None:
                    try:
                        with conn.begin_nested():
                            conn.execute(insert(t).values(member=member, opened_at=_now()))
                    except IntegrityError:  # opened concurrently (PostgreSQL): lock theirs
                        pass
                    conn.execute(select(t.c.member).where(t.c.member == member).with_for_update())
                yield conn

    def _load(self, conn: Connection, member: str) -> tuple[list[Lot], list[tuple[str, int]]]:
        """The member's lots and every allocation against them: all that what is left depends on."""
        lt, at = WalletLotRow.__table__, WalletAllocationRow.__table__
        lots = [
            Lot(r.lot_id, r.points, r.earned_on, r.expires_on)
            for r in conn.execute(select(lt).where(lt.c.member == member))
        ]
        taken = [
            (r.lot_id, r.points) for r in conn.execute(select(at.c.lot_id, at.c.points).where(at.c.member == member))
        ]
        return lots, taken

    def _existing(self, conn: Connection, member: str, ref: str | None) -> Entry | None:
        return None if ref is None else self.entry_with_ref(conn, member, ref)

    def entry_with_ref(self, conn: Connection, member: str, ref: str) -> Entry | None:
        """The member's entry recorded under ``ref`` (a purchase or exchange id), if any."""
        t = WalletEntryRow.__table__
        row = conn.execute(select(t).where(t.c.member == member, t.c.ref == ref)).first()
        return None if row is None else self._entry(conn, row)

    def _entry(self, conn: Connection, row: object) -> Entry:
        lt, at = WalletLotRow.__table__, WalletAllocationRow.__table__
        r = row._mapping  # type: ignore[attr-defined]
        lot_row = conn.execute(select(lt).where(lt.c.entry_id == r["entry_id"])).first()
        allocations = conn.execute(
            select(at.c.lot_id, at.c.points).where(at.c.entry_id == r["entry_id"]).order_by(at.c.lot_id)
        ).all()
        return Entry(
            entry_id=r["entry_id"],
            kind=Kind(r["kind"]),
            reason=r["reason"],
            points=r["points"],
            at=r["at"].replace(tzinfo=UTC) if r["at"].tzinfo is None else r["at"],
            lot=None if lot_row is None else Lot(lot_row.lot_id, lot_row.points, lot_row.earned_on, lot_row.expires_on),
            allocations=tuple((a.lot_id, a.points) for a in allocations),
            ref=r["ref"],
        )

    def _append(self, conn: Connection, member: str, entry: Entry) -> Entry:
        conn.execute(
            insert(WalletEntryRow.__table__).values(
                entry_id=entry.entry_id,
                member=member,
                kind=entry.kind.value,
                reason=entry.reason,
                points=entry.points,
                at=entry.at,
                ref=entry.ref,
            )
        )
        if entry.lot is not None:
            lot = entry.lot
            conn.execute(
                insert(WalletLotRow.__table__).values(
                    lot_id=lot.lot_id,
                    member=member,
                    entry_id=entry.entry_id,
                    points=lot.points,
                    earned_on=lot.earned_on,
                    expires_on=lot.expires_on,
                )
            )
        if entry.allocations:
            conn.execute(
                insert(WalletAllocationRow.__table__),
                [
                    {"entry_id": entry.entry_id, "lot_id": lot_id, "member": member, "points": n}
                    for lot_id, n in entry.allocations
                ],
            )
        return entry

    # --- movements -------------------------------------------------------------------------

    def earn(
        self,
        member: str,
        points: int,
        reason: str,
        earned_on: date,
        expires_on: date,
        *,
        ref: str | None = None,
        kind: Kind = Kind.EARN,
    ) -> Entry:
        """Credit a new lot (idempotent on ``ref``)."""
        with self.locked(member) as conn:
            return self.earn_in(conn, member, points, reason, earned_on, expires_on, ref=ref, kind=kind)

    def earn_in(
        self,
        conn: Connection,
        member: str,
        points: int,
        reason: str,
        earned_on: date,
        expires_on: date,
        *,
        ref: str | None = None,
        kind: Kind = Kind.EARN,
    ) -> Entry:
        """:meth:`earn` inside a transaction from :meth:`locked` (the caller holds the member's lock)."""
        check_earn(points, reason, earned_on, expires_on, kind)
        done = self._existing(conn, member, ref)
        if done is not None:
            return done
        lot = Lot(uuid.uuid4().hex, points, earned_on, expires_on)
        return self._append(conn, member, Entry(uuid.uuid4().hex, kind, reason, points, _now(), lot=lot, ref=ref))

    def redeem(
        self, member: str, points: int, reason: str, today: date, *, ref: str | None = None, kind: Kind = Kind.REDEEM
    ) -> Entry:
        """Take points, oldest-expiring first (idempotent on ``ref``); never below zero."""
        with self.locked(member) as conn:
            return self.redeem_in(conn, member, points, reason, today, ref=ref, kind=kind)

    def redeem_in(
        self,
        conn: Connection,
        member: str,
        points: int,
        reason: str,
        today: date,
        *,
        ref: str | None = None,
        kind: Kind = Kind.REDEEM,
    ) -> Entry:
        """:meth:`redeem` inside a transaction from :meth:`locked` (the caller holds the member's lock)."""
        wallet.check_amount(points)
        wallet.check_reason(kind, reason)
        done = self._existing(conn, member, ref)
        if done is not None:
            return done
        lots, taken = self._load(conn, member)
        allocations = wallet.take(lots, taken, points, today)
        entry = Entry(uuid.uuid4().hex, kind, reason, -points, _now(), allocations=allocations, ref=ref)
        return self._append(conn, member, entry)

    def lots_of(self, conn: Connection, entry: Entry) -> list[Lot]:
        """The lots an entry took from (to refund points with the expiry they had)."""
        lt = WalletLotRow.__table__
        ids = [lot_id for lot_id, _ in entry.allocations]
        rows = conn.execute(select(lt).where(lt.c.lot_id.in_(ids))).all() if ids else []
        return [Lot(r.lot_id, r.points, r.earned_on, r.expires_on) for r in rows]

    def adjust(self, member: str, points: int, reason: str, today: date, expires_on: date | None = None) -> Entry:
        """An operator's correction: up creates a lot (``expires_on`` needed), down takes like a redemption."""
        if points > 0:
            if expires_on is None:
                raise WalletError("bad_expiry", "an upward adjustment creates a lot: give its expiry")
            return self.earn(member, points, reason, today, expires_on, kind=Kind.ADJUST)
        return self.redeem(member, -points, reason, today, kind=Kind.ADJUST)

    def expire(self, member: str, today: date) -> Entry | None:
        """Expire what is left of every lot past its day; None if nothing expires."""
        with self.locked(member) as conn:
            lots, taken = self._load(conn, member)
            allocations = wallet.expiring(lots, taken, today)
            if not allocations:
                return None
            points = -sum(n for _, n in allocations)
            entry = Entry(uuid.uuid4().hex, Kind.EXPIRE, "expiry", points, _now(), allocations=allocations)
            return self._append(conn, member, entry)

    def expire_due(self, today: date) -> tuple[int, int]:
        """Expire every wallet holding a lot past its day with points left: (wallets, points expired).

        What a daily job runs. Only wallets with something to expire are locked, one at a time.
        """
        lt, at = WalletLotRow.__table__, WalletAllocationRow.__table__
        taken = select(at.c.lot_id, func.sum(at.c.points).label("taken")).group_by(at.c.lot_id).subquery()
        due = (
            select(lt.c.member)
            .outerjoin(taken, taken.c.lot_id == lt.c.lot_id)
            .where(lt.c.expires_on < today, lt.c.points > func.coalesce(taken.c.taken, 0))
            .distinct()
        )
        with self.engine.connect() as conn:
            members = list(conn.execute(due).scalars())
        wallets = points = 0
        for member in members:
            entry = self.expire(member, today)
            if entry is not None:
                wallets, points = wallets + 1, points - entry.points
        return wallets, points

    # --- reads -----------------------------------------------------------------------------

    def balance(self, member: str, today: date) -> int:
        """Usable points today, derived from the journal."""
        with self.engine.connect() as conn:
            lots, taken = self._load(conn, member)
        return wallet.balance(lots, taken, today)

    def totals(self, today: date) -> tuple[int, int]:
        """(outstanding, expired) points over every wallet: usable today, and lost to expiry.

        Expired counts both journaled expiry entries and what lots past their date still hold
        before the next expiry run journals it.
        """
        lt, at, et = WalletLotRow.__table__, WalletAllocationRow.__table__, WalletEntryRow.__table__
        with self.engine.connect() as conn:
            rows = conn.execute(select(lt.c.lot_id, lt.c.points, lt.c.expires_on))
            lots = {r.lot_id: (r.points, r.expires_on) for r in rows}
            taken: dict[str, int] = {}
            for lot_id, points in conn.execute(select(at.c.lot_id, at.c.points)):
                taken[lot_id] = taken.get(lot_id, 0) + points
            journaled = -sum(conn.execute(select(et.c.points).where(et.c.kind == Kind.EXPIRE.value)).scalars())
        outstanding = expired_left = 0
        for lot_id, (points, expires_on) in lots.items():
            left = points - taken.get(lot_id, 0)
            if expires_on >= today:  # usable through its expiry day, as :func:`node.wallet.balance`
                outstanding += left
            else:
                expired_left += left
        return outstanding, journaled + expired_left

    def journal(self, member: str) -> list[Entry]:
        """Every entry of the member's wallet, oldest first."""
        t = WalletEntryRow.__table__
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c.member == member).order_by(t.c.at, t.c.entry_id)).all()
            return [self._entry(conn, r) for r in rows]

    def movements(self, members: Sequence[str]) -> dict[str, list[Movement]]:
        """Each of ``members``' entries as :class:`Movement`, oldest first, read in bulk (two
        statements per 500 members) for building training rows; members with no wallet are absent."""
        et, lt = WalletEntryRow.__table__, WalletLotRow.__table__
        out: dict[str, list[Movement]] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(members), 500):
                chunk = list(members[i : i + 500])
                earned = dict(conn.execute(select(lt.c.entry_id, lt.c.earned_on).where(lt.c.member.in_(chunk))).all())
                rows = conn.execute(
                    select(et.c.entry_id, et.c.member, et.c.kind, et.c.reason, et.c.points, et.c.at)
                    .where(et.c.member.in_(chunk))
                    .order_by(et.c.member, et.c.at, et.c.entry_id)
                )
                for entry_id, member, kind, reason, points, at in rows:
                    day = earned.get(entry_id) or at.date()
                    out.setdefault(member, []).append(Movement(Kind(kind), reason, points, day))
        return out

    # --- rights requests -----------------------------------------------------------------------

    def export_member(self, member: str) -> dict[str, object]:
        """The member's wallet for an access request: balance today, lots and the whole journal."""
        today = datetime.now(UTC).date()
        lt = WalletLotRow.__table__
        with self.engine.connect() as conn:
            lots = conn.execute(select(lt).where(lt.c.member == member).order_by(lt.c.earned_on)).all()
        return {
            "balance": self.balance(member, today),
            "lots": [
                {"lot_id": r.lot_id, "points": r.points, "earned_on": str(r.earned_on), "expires_on": str(r.expires_on)}
                for r in lots
            ],
            "journal": [
                {
                    "entry_id": e.entry_id,
                    "kind": e.kind.value,
                    "reason": e.reason,
                    "points": e.points,
                    "at": e.at.isoformat(),
                    "ref": e.ref,
                }
                for e in self.journal(member)
            ],
        }

    def erase_member(self, member: str) -> int:
        """Erasure (PIPL Art. 47): the one deletion the journal allows; returns the rows removed."""
        removed = 0
        with self.locked(member) as conn:
            for row in (WalletAllocationRow, WalletLotRow, WalletEntryRow, WalletAccount):
                t = row.__table__
                removed += conn.execute(delete(t).where(t.c.member == member)).rowcount
        return removed
