"""Indexes of the audit trail by member pseudonym and by action and time, so that an access request or
a filtered bundle reads only the events it selects instead of scanning the whole log.

The indexes are derived data: they are caught up from the log (from one watermark to the head) on
every query, in one transaction, so a crash between appending an event and indexing it loses
nothing and a query always sees every event already in the log. Rows hold pseudonyms, actions,
times and ledger indexes only, like the log itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, Engine, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel

from compliance.audit import AuditEvent, AuditFilter, decode_entry

if TYPE_CHECKING:
    from ledger.storage import Log


class AuditSubjectRow(SQLModel, table=True):
    """One audit event naming one pseudonym (as subject or as the acting member)."""

    __tablename__ = "compliance_audit_subject"
    member: str = Field(primary_key=True, max_length=64)
    entry_index: int = Field(primary_key=True, sa_type=BigInteger)  # ledger indexes reach 2^40


class AuditActionRow(SQLModel, table=True):
    """One audit event's action and time, for bundles filtered by action or by time."""

    __tablename__ = "compliance_audit_action"
    entry_index: int = Field(primary_key=True, sa_type=BigInteger)
    action: str = Field(index=True, max_length=100)
    ts_utc: datetime = Field(index=True)


class AuditIndexMark(SQLModel, table=True):
    """How far each log has been indexed."""

    __tablename__ = "compliance_audit_index_mark"
    log_name: str = Field(primary_key=True, max_length=100)
    indexed_upto: int = Field(default=0, sa_type=BigInteger)


class AuditIndex:
    """Who each audit event is about, and its action and time, for one log."""

    def __init__(self, engine: Engine, log: Log) -> None:
        self.engine = engine
        self.log = log

    def catch_up(self) -> int:
        """Index every event appended since the last call; return how many entries were read."""
        marks = AuditIndexMark.__table__
        with self.engine.connect() as conn:
            done = conn.execute(select(marks.c.indexed_upto).where(marks.c.log_name == self.log.name)).scalar()
        if done is not None and done >= self.log.size:
            return 0  # the common case: nothing new, and no write lock taken
        try:
            return self._index_new()
        except IntegrityError:  # another process created the mark row first: its work is ours now
            return self._index_new()

    def _index_new(self) -> int:
        rows, actions, marks = AuditSubjectRow.__table__, AuditActionRow.__table__, AuditIndexMark.__table__
        with self.engine.connect() as conn:
            conn.execution_options(ledger_write=True)  # SQLite: take the write lock at BEGIN
            with conn.begin():
                start = conn.execute(
                    select(marks.c.indexed_upto).where(marks.c.log_name == self.log.name).with_for_update()
                ).scalar_one_or_none()
                if start is None:
                    conn.execute(insert(marks).values(log_name=self.log.name, indexed_upto=0))
                    start = 0
                end = self.log.size
                if end <= start:
                    return 0
                pairs: set[tuple[str, int]] = set()
                kinds: list[dict[str, object]] = []
                for entry in self.log.entries(start, end):
                    event = decode_entry(entry.index, entry.data)
                    pairs.update((p, entry.index) for p in _subjects(event))
                    kinds.append({"entry_index": entry.index, "action": event.action, "ts_utc": event.ts_utc})
                new = [{"member": m, "entry_index": i} for m, i in sorted(pairs)]
                for i in range(0, len(new), 1000):
                    conn.execute(insert(rows), new[i : i + 1000])
                for i in range(0, len(kinds), 1000):
                    conn.execute(insert(actions), kinds[i : i + 1000])
                conn.execute(update(marks).where(marks.c.log_name == self.log.name).values(indexed_upto=end))
        return end - start

    def candidates(self, flt: AuditFilter, size: int) -> list[int] | None:
        """The indexes below ``size`` an index finds for ``flt`` (a superset: the filter still decides),
        or ``None`` when no criterion is indexed and the whole log must be read."""
        if flt.subject is None and flt.action is None and flt.from_ts is None and flt.to_ts is None:
            return None
        self.catch_up()
        if flt.subject is not None:  # the narrowest: one member's events
            t = AuditSubjectRow.__table__
            query = select(t.c.entry_index).where(t.c.member == flt.subject, t.c.entry_index < size)
        else:
            a = AuditActionRow.__table__
            query = select(a.c.entry_index).where(a.c.entry_index < size)
            if flt.action is not None:  # exact actions, or prefixes ending in "."
                query = query.where(
                    or_(
                        *(
                            a.c.action.startswith(part, autoescape=True) if part.endswith(".") else a.c.action == part
                            for part in flt.actions
                        )
                    )
                )
            if flt.from_ts is not None:
                query = query.where(a.c.ts_utc >= flt.from_ts)
            if flt.to_ts is not None:
                query = query.where(a.c.ts_utc < flt.to_ts)
        with self.engine.connect() as conn:
            return sorted(conn.execute(query).scalars())

    def about(self, pseudonym: str) -> Iterator[tuple[int, AuditEvent]]:
        """Every event naming ``pseudonym``, oldest first, including those appended a moment ago."""
        self.catch_up()
        rows = AuditSubjectRow.__table__
        with self.engine.connect() as conn:
            indexes = conn.execute(
                select(rows.c.entry_index).where(rows.c.member == pseudonym).order_by(rows.c.entry_index)
            ).scalars()
            found = list(indexes)
        for index in found:
            yield index, decode_entry(index, self.log.entry(index).data)


def _subjects(event: AuditEvent) -> set[str]:
    members = set(event.subject_pseudo_ids)
    if event.actor.type == "member":
        members.add(event.actor.id)
    return members
