"""Where joint-handler notices are tracked: those sent until acknowledged, those received until done.

Sent notices are written in the transaction of the change that set them off (a withdrawal's
consent records) or before the change they announce (an erasure ends the links they name), so a
crash loses none; delivery retries them until the other handler answers. Received notices are
keyed by sender and notice id, so a notice delivered twice (a retry after a lost answer) is
recorded once and answered as the first time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel

from compliance.joint import NoticeKind, NoticeState, Planned

#: The longest a failing notice waits between attempts (it starts at one recovery pass).
MAX_BACKOFF = timedelta(hours=1)

#: How often a notice the other handler keeps open (a correction a person checks) is asked about again.
FOLLOW_UP = timedelta(days=1)


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class JointSentRow(SQLModel, table=True):
    """A notice this node sent (or must send) to another joint handler."""

    __tablename__ = "compliance_joint_sent"
    notice_id: str = Field(primary_key=True, max_length=32)
    peer: str = Field(max_length=200, index=True)
    kind: str = Field(max_length=16)
    purpose: str = Field(max_length=265)
    link_id: str | None = Field(default=None, max_length=64)  # dropped once acknowledged: no longer needed
    member: str = Field(max_length=32, index=True)
    fields: str = Field(default="", max_length=200)
    created_at: datetime
    due: date
    acked_at: datetime | None = None
    answer: str | None = Field(default=None, max_length=16)
    attempts: int = 0
    next_at: datetime | None = None
    last_error: str | None = Field(default=None, max_length=300)


class JointReceivedRow(SQLModel, table=True):
    """A notice another joint handler sent this node, with what was done about it."""

    __tablename__ = "compliance_joint_received"
    sender: str = Field(primary_key=True, max_length=200)
    notice_id: str = Field(primary_key=True, max_length=32)
    kind: str = Field(max_length=16)
    purpose: str = Field(max_length=265)
    member: str | None = Field(default=None, max_length=32, index=True)  # None: the link names no one here
    fields: str = Field(default="", max_length=200)
    received_at: datetime
    due: date
    state: str = Field(max_length=16)
    completed_at: datetime | None = None


@dataclass(frozen=True)
class Sent:
    """A sent notice as the queue shows it."""

    notice_id: str
    peer: str
    kind: NoticeKind
    purpose: str
    link_id: str | None
    member: str
    fields: tuple[str, ...]
    created_at: datetime
    due: date
    acked_at: datetime | None
    answer: str | None
    attempts: int
    last_error: str | None

    @property
    def state(self) -> NoticeState:
        """Pending until the other handler acknowledged it; then what it answered."""
        return NoticeState(self.answer) if self.acked_at is not None and self.answer else NoticeState.PENDING


@dataclass(frozen=True)
class Received:
    """A received notice as the queue shows it."""

    sender: str
    notice_id: str
    kind: NoticeKind
    purpose: str
    member: str | None
    fields: tuple[str, ...]
    received_at: datetime
    due: date
    state: NoticeState
    completed_at: datetime | None


def _sent(row: dict) -> Sent:  # type: ignore[type-arg]
    return Sent(
        row["notice_id"],
        row["peer"],
        NoticeKind(row["kind"]),
        row["purpose"],
        row["link_id"],
        row["member"],
        tuple(f for f in row["fields"].split(",") if f),
        _aware(row["created_at"]),
        row["due"],  # type: ignore[arg-type]
        _aware(row["acked_at"]),
        row["answer"],
        row["attempts"],
        row["last_error"],
    )


def _received(row: dict) -> Received:  # type: ignore[type-arg]
    return Received(
        row["sender"],
        row["notice_id"],
        NoticeKind(row["kind"]),
        row["purpose"],
        row["member"],
        tuple(f for f in row["fields"].split(",") if f),
        _aware(row["received_at"]),
        row["due"],  # type: ignore[arg-type]
        NoticeState(row["state"]),
        _aware(row["completed_at"]),
    )


def sent_rows(planned: Iterable[Planned]) -> list[dict]:  # type: ignore[type-arg]
    """Rows for :meth:`JointStore.add_sent` (or a caller's own transaction)."""
    return [
        {
            "notice_id": p.notice_id,
            "peer": p.peer,
            "kind": p.kind.value,
            "purpose": p.purpose,
            "link_id": p.link_id,
            "member": p.member,
            "fields": ",".join(p.fields),
            "created_at": p.created_at,
            "due": p.due,
            "attempts": 0,
        }
        for p in planned
    ]


class JointStore:
    """Sent and received joint-handler notices."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- sent ---------------------------------------------------------------------------------

    @staticmethod
    def add_sent_in(conn: Connection, planned: Iterable[Planned]) -> int:
        """Store planned notices in ``conn``'s transaction; one already stored (same id) is kept as it is."""
        rows = sent_rows(planned)
        t = JointSentRow.__table__
        known = (
            set(conn.execute(select(t.c.notice_id).where(t.c.notice_id.in_([r["notice_id"] for r in rows]))).scalars())
            if rows
            else set()
        )
        new = [r for r in rows if r["notice_id"] not in known]
        if new:
            conn.execute(insert(t), new)
        return len(new)

    def add_sent(self, planned: Iterable[Planned]) -> int:
        """Store planned notices in a transaction of their own; return how many were new."""
        with self.engine.begin() as conn:
            return self.add_sent_in(conn, planned)

    def due_for_delivery(self, now: datetime | None = None, limit: int = 500) -> list[Sent]:
        """Notices whose next attempt is due, oldest first: those not acknowledged yet, and those the other
        handler acknowledged as open (a correction a person there still checks), asked about again."""
        now = now or _now()
        t = JointSentRow.__table__
        waiting = t.c.acked_at.is_(None) | (t.c.answer == NoticeState.OPEN.value)
        query = (
            select(t)
            .where(waiting, (t.c.next_at.is_(None)) | (t.c.next_at <= now))
            .order_by(t.c.created_at)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_sent(dict(r._mapping)) for r in conn.execute(query)]

    def acknowledged(self, notice_id: str, answer: NoticeState, now: datetime | None = None) -> None:
        """The other handler recorded the notice. Done: stop, and forget the link id it needed. Open there:
        ask again in a day, until it is done."""
        now = now or _now()
        t = JointSentRow.__table__
        done = answer is not NoticeState.OPEN
        values = {"acked_at": now, "answer": answer.value, "last_error": None, "attempts": 0}
        values |= {"link_id": None} if done else {"next_at": now + FOLLOW_UP}
        with self.engine.begin() as conn:
            conn.execute(update(t).where(t.c.notice_id == notice_id).values(**values))

    def failed(self, notice_id: str, error: str, now: datetime | None = None) -> None:
        """An attempt failed: try again later, waiting longer each time (up to :data:`MAX_BACKOFF`)."""
        now = now or _now()
        t = JointSentRow.__table__
        with self.engine.begin() as conn:
            attempts = conn.execute(select(t.c.attempts).where(t.c.notice_id == notice_id)).scalar_one()
            wait = min(MAX_BACKOFF, timedelta(seconds=5 * 2 ** min(attempts, 12)))
            conn.execute(
                update(t)
                .where(t.c.notice_id == notice_id)
                .values(attempts=attempts + 1, next_at=now + wait, last_error=error[:300])
            )

    def retry_now(self) -> int:
        """Make every unacknowledged notice due at once (``rights joint --retry``)."""
        t = JointSentRow.__table__
        with self.engine.begin() as conn:
            return conn.execute(update(t).where(t.c.acked_at.is_(None)).values(next_at=None)).rowcount

    def sent(self, member: str | None = None) -> list[Sent]:
        """Every sent notice (one member's, if given), oldest first."""
        t = JointSentRow.__table__
        query = select(t).order_by(t.c.created_at)
        if member is not None:
            query = query.where(t.c.member == member)
        with self.engine.connect() as conn:
            return [_sent(dict(r._mapping)) for r in conn.execute(query)]

    # --- received -----------------------------------------------------------------------------

    @staticmethod
    def add_received_in(conn: Connection, r: Received) -> None:
        """Record a received notice in ``conn``'s transaction (``IntegrityError`` if it is there already)."""
        row = {
            "sender": r.sender,
            "notice_id": r.notice_id,
            "kind": r.kind.value,
            "purpose": r.purpose,
            "member": r.member,
            "fields": ",".join(r.fields),
            "received_at": r.received_at,
            "due": r.due,
            "state": r.state.value,
            "completed_at": r.completed_at,
        }
        conn.execute(insert(JointReceivedRow.__table__), [row])

    def receive(self, r: Received) -> tuple[Received, bool]:
        """Record a received notice once; return the record kept and whether it is new."""
        try:
            with self.engine.begin() as conn:
                self.add_received_in(conn, r)
            return r, True
        except IntegrityError:
            found = self.received_one(r.sender, r.notice_id)
            assert found is not None
            return found, False

    def received_one(self, sender: str, notice_id: str) -> Received | None:
        """One received notice, or None."""
        t = JointReceivedRow.__table__
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.sender == sender, t.c.notice_id == notice_id)).first()
        return _received(dict(row._mapping)) if row is not None else None

    def received(self, member: str | None = None) -> list[Received]:
        """Every received notice (one member's, if given), oldest first."""
        t = JointReceivedRow.__table__
        query = select(t).order_by(t.c.received_at)
        if member is not None:
            query = query.where(t.c.member == member)
        with self.engine.connect() as conn:
            return [_received(dict(r._mapping)) for r in conn.execute(query)]

    def complete(self, sender: str, notice_id: str, now: datetime | None = None) -> bool:
        """Mark an open received notice done; return whether one was open."""
        t = JointReceivedRow.__table__
        with self.engine.begin() as conn:
            return bool(
                conn.execute(
                    update(t)
                    .where(t.c.sender == sender, t.c.notice_id == notice_id, t.c.state == NoticeState.OPEN.value)
                    .values(state=NoticeState.COMPLETED.value, completed_at=now or _now())
                ).rowcount
            )

    def under_way(self, today: date) -> list[dict[str, Any]]:
        """Notices still under way, both ways, earliest due first: sent ones not acknowledged, or kept open
        by the other handler; received ones a person here must finish. Each says if it is overdue."""
        rows = [
            _row(
                "sent",
                s.peer,
                s.notice_id,
                s.member,
                s.kind,
                s.purpose,
                s.state,
                s.due,
                today,
                s.attempts,
                s.last_error,
            )
            for s in self.sent()
            if s.state in (NoticeState.PENDING, NoticeState.OPEN)
        ]
        rows += [
            _row("received", r.sender, r.notice_id, r.member, r.kind, r.purpose, r.state, r.due, today)
            for r in self.received()
            if r.state is NoticeState.OPEN
        ]
        return sorted(rows, key=lambda r: (r["due"], r["notice"]))


def _row(
    direction: str,
    peer: str,
    notice: str,
    member: str | None,
    kind: NoticeKind,
    purpose: str,
    state: NoticeState,
    due: date,
    today: date,
    attempts: int | None = None,
    last_error: str | None = None,
) -> dict[str, Any]:
    return {
        "direction": direction,
        "peer": peer,
        "notice": notice,
        "member": member,
        "kind": kind.value,
        "purpose": purpose,
        "state": state.value,
        "due": due.isoformat(),
        "overdue": due < today,
        "attempts": attempts,
        "last_error": last_error,
    }
