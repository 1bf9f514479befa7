"""The audit outbox: an audit event is staged in the same transaction as the change it records.

A consent change lives in the node's tables; its audit event lives in the ledger, written on
another connection. Writing both cannot be one transaction, so the event is first staged here,
atomically with the change; after it is appended to the audit log the staged row is removed. A
crash in between leaves the row, and :func:`recover` appends what the log does not hold yet,
recognising events already appended by their ``event_id``: every change is audited exactly once.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Text, delete, insert, select
from sqlmodel import Column, Field, SQLModel

from ledger.canonical import canonical_json

Staged = tuple[str, dict[str, Any]]  # (action, fields) with fields["event_id"] set


class AuditOutboxRow(SQLModel, table=True):
    """One audit event staged with its change, waiting to be appended to the audit log."""

    __tablename__ = "compliance_audit_outbox"
    event_id: str = Field(primary_key=True, max_length=32)
    action: str = Field(max_length=64)
    fields: str = Field(sa_column=Column(Text, nullable=False))  # JSON
    staged_at: datetime


def with_ids(events: Iterable[tuple[str, dict[str, Any]]]) -> list[Staged]:
    """The events, each given the ``event_id`` it keeps from staging to the log."""
    return [(action, {**fields, "event_id": uuid.uuid4().hex}) for action, fields in events]


def stage(conn: Connection, events: list[Staged], appended: Iterable[str] = ()) -> None:
    """Insert the events into the outbox inside the caller's transaction.

    ``appended`` names events already in the audit log: their rows go in the same transaction,
    which saves a commit (an fsync) per change compared with clearing them on their own.
    """
    t = AuditOutboxRow.__table__
    done = list(appended)
    for i in range(0, len(done), 500):
        conn.execute(delete(t).where(t.c.event_id.in_(done[i : i + 500])))
    now = datetime.now(UTC)
    rows = [
        {"event_id": f["event_id"], "action": a, "fields": canonical_json(f).decode("ascii"), "staged_at": now}
        for a, f in events
    ]
    if rows:
        conn.execute(insert(AuditOutboxRow.__table__), rows)


def clear(engine: Engine, event_ids: Iterable[str]) -> None:
    """Remove events from the outbox once they are in the audit log."""
    ids = list(event_ids)
    t = AuditOutboxRow.__table__
    with engine.begin() as conn:
        for i in range(0, len(ids), 500):
            conn.execute(delete(t).where(t.c.event_id.in_(ids[i : i + 500])))


def pending(engine: Engine) -> list[tuple[str, dict[str, Any], datetime]]:
    """Staged events not yet cleared: (action, fields, staged_at), oldest first."""
    t = AuditOutboxRow.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(t).order_by(t.c.staged_at, t.c.event_id)).all()
    return [
        (r.action, json.loads(r.fields), r.staged_at.replace(tzinfo=UTC) if r.staged_at.tzinfo is None else r.staged_at)
        for r in rows
    ]


def recover(
    engine: Engine,
    logged: Callable[[list[dict[str, Any]]], set[str]],
    append: Callable[[list[Staged]], object],
) -> int:
    """Append every staged event the audit log lacks, then clear the outbox; return how many were appended.

    ``logged`` says which of the staged events' ids are already in the log.
    """
    rows = pending(engine)
    if not rows:
        return 0
    present = logged([f for _, f, _ in rows])
    missing = [(a, {**f, "ts_utc": staged_at}) for a, f, staged_at in rows if f["event_id"] not in present]
    if missing:
        append(missing)
    clear(engine, [f["event_id"] for _, f, _ in rows])
    return len(missing)
