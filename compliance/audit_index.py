"""An index of the audit trail by member pseudonym, so an access request does not scan the whole log.

The index is derived data: it is caught up from the log (from a watermark to the head) on every
query, in one transaction, so a crash between appending an event and indexing it loses nothing
and an access request always sees every event already in the log. Rows hold pseudonyms and
ledger indexes only, like the log itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel

from compliance.audit import AuditEvent, decode_entry

if TYPE_CHECKING:
    from ledger.storage import Log


class AuditSubjectRow(SQLModel, table=True):
    """One audit event naming one pseudonym (as subject or as the acting member)."""

    __tablename__ = "compliance_audit_subject"
    member: str = Field(primary_key=True, max_length=64)
    entry_index: int = Field(primary_key=True, sa_type=BigInteger)  # ledger indexes reach 2^40


class AuditIndexMark(SQLModel, table=True):
    """How far each log has been indexed."""

    __tablename__ = "compliance_audit_index_mark"
    log_name: str = Field(primary_key=True, max_length=100)
    indexed_upto: int = Field(default=0, sa_type=BigInteger)


class AuditIndex:
    """Who each audit event is about, for one log."""

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
        rows, marks = AuditSubjectRow.__table__, AuditIndexMark.__table__
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
                for entry in self.log.entries(start, end):
                    event = decode_entry(entry.index, entry.data)
                    pairs.update((p, entry.index) for p in _subjects(event))
                new = [{"member": m, "entry_index": i} for m, i in sorted(pairs)]
                for i in range(0, len(new), 1000):
                    conn.execute(insert(rows), new[i : i + 1000])
                conn.execute(update(marks).where(marks.c.log_name == self.log.name).values(indexed_upto=end))
        return end - start

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
