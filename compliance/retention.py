"""Retention: delete what is no longer needed, automatically, except what a legal hold keeps (PIPL Art. 19, 47).

What is purged, and when (``RULES``):

- consent records of members who are gone (erased: their pseudonym key is shredded), three
  years after their last record: consent evidence is kept three years (checklist PIPL-LOG-01);
- rights requests, three years after they were completed or refused (a review's statement and
  verdict with it);
- cross-border subject counts, three years after the calendar year they counted.

Never purged here: the ledger's logs (append-only, hash-chained; audit events are evidence kept
for their retention class by the ledger, not deleted piecemeal), live members' consent history,
impact assessments (kept at least three years; see :mod:`compliance.pia`). A legal hold on a
pseudonym keeps everything about it until the hold is released. Every purge is audited with counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlmodel import Field, SQLModel

from compliance.egress import CrossBorderSubject
from compliance.reviews import ReviewRow
from compliance.service import AuditSink
from compliance.store import ConsentRow, RightsRequestRow, RightsStepRow

EVIDENCE = timedelta(days=3 * 366)
RULES = {
    "consent_of_erased_members": "3 years after the member's last consent record",
    "rights_requests": "3 years after completion or refusal",
    "xborder_counts": "3 years after the calendar year counted",
}


class LegalHoldRow(SQLModel, table=True):
    """A legal hold on one member pseudonym: nothing about them is purged while it is active."""

    __tablename__ = "compliance_legal_hold"
    id: int | None = Field(default=None, primary_key=True)
    member: str = Field(index=True, max_length=64)
    reason: str = Field(max_length=500)
    placed_by: str = Field(max_length=200)
    placed_at: datetime
    released_at: datetime | None = None


@dataclass(frozen=True)
class PurgeReport:
    """How many rows each rule deleted (or would delete, on a dry run)."""

    consent_records: int
    rights_requests: int
    xborder_counts: int
    held_members_skipped: int
    dry_run: bool


def _now() -> datetime:
    return datetime.now(UTC)


class Retention:
    """Legal holds and the purge job."""

    def __init__(
        self,
        engine: Engine,
        live_pseudonyms: Callable[[], set[str]],
        audit: AuditSink,
        after_purge: Callable[[], object] = lambda: None,
    ) -> None:
        # live_pseudonyms: members still registered (their key exists); everyone else is gone
        # after_purge: run after a purge deleted rows, for the storage to drop old copies of them
        # (the node checkpoints SQLite's write-ahead log)
        self.engine = engine
        self.live_pseudonyms = live_pseudonyms
        self.audit = audit
        self.after_purge = after_purge

    def create_schema(self) -> None:
        """Create the table if missing."""
        SQLModel.metadata.create_all(self.engine, tables=[LegalHoldRow.__table__])

    def hold(self, member: str, reason: str, by: str) -> None:
        """Place a legal hold on pseudonym ``member`` (and on the live record, if any, against erasure)."""
        if not reason.strip():
            raise ValueError("a legal hold needs a reason (the case or order it serves)")
        with self.engine.begin() as conn:
            conn.execute(
                insert(LegalHoldRow.__table__).values(
                    member=member, reason=reason.strip(), placed_by=by, placed_at=_now()
                )
            )
        self.audit("config.change", subject_pseudo_ids=[member], details={"setting": "legal_hold", "state": "placed"})

    def release(self, member: str, by: str) -> bool:
        """Release every active hold on ``member``; return whether there was one."""
        t = LegalHoldRow.__table__
        with self.engine.begin() as conn:
            n = conn.execute(
                update(t).where(t.c.member == member, t.c.released_at.is_(None)).values(released_at=_now())
            ).rowcount
        if n:
            self.audit(
                "config.change",
                subject_pseudo_ids=[member],
                details={"setting": "legal_hold", "state": "released", "by": by},
            )
        return bool(n)

    def held(self) -> set[str]:
        """Pseudonyms under an active hold."""
        t = LegalHoldRow.__table__
        with self.engine.connect() as conn:
            return set(conn.execute(select(t.c.member).where(t.c.released_at.is_(None))).scalars())

    def purge(self, now: datetime | None = None, *, dry_run: bool = False) -> PurgeReport:
        """Delete every record past its retention (see ``RULES``) that no hold keeps; audit the counts."""
        now = now or _now()
        cutoff = now - EVIDENCE
        held = self.held()
        live = self.live_pseudonyms()
        c, rq, st, xb = (
            ConsentRow.__table__,
            RightsRequestRow.__table__,
            RightsStepRow.__table__,
            CrossBorderSubject.__table__,
        )
        with self.engine.begin() as conn:
            last = conn.execute(select(c.c.member, func.max(c.c.at)).group_by(c.c.member)).all()
            gone = [m for m, at in last if m not in live and _aware(at) < cutoff]
            consent_members = [m for m in gone if m not in held]
            finished = conn.execute(
                select(st.c.dsr_id, rq.c.member)
                .join(rq, rq.c.dsr_id == st.c.dsr_id)
                .where(st.c.step.in_(("completed", "refused")), st.c.at < cutoff)
            ).all()
            dsr_ids = [d for d, m in finished if m not in held]
            xb_years = now.year - 4  # the year counted, plus three full years
            consent_n = _count(conn, c, c.c.member, consent_members)
            xborder_n = conn.execute(select(func.count()).select_from(xb).where(xb.c.year <= xb_years)).scalar_one()
            if not dry_run:
                _delete_in(conn, c, c.c.member, consent_members)
                _delete_in(conn, ReviewRow.__table__, ReviewRow.__table__.c.dsr_id, dsr_ids)
                _delete_in(conn, st, st.c.dsr_id, dsr_ids)
                _delete_in(conn, rq, rq.c.dsr_id, dsr_ids)
                conn.execute(delete(xb).where(xb.c.year <= xb_years))
        skipped = len([m for m in gone if m in held]) + len([d for d, m in finished if m in held])
        report = PurgeReport(consent_n, len(dsr_ids), xborder_n, skipped, dry_run)
        if not dry_run:
            self.audit(
                "retention.purge",
                record_count=consent_n + len(dsr_ids) + xborder_n,
                details={
                    "consent_records": consent_n,
                    "rights_requests": len(dsr_ids),
                    "xborder_counts": xborder_n,
                    "held_skipped": skipped,
                    "cutoff": f"{cutoff:%Y-%m-%dT%H:%M:%SZ}",
                },
            )
            self.after_purge()  # after the audit: the purge is on record even if this fails
        return report


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _count(conn, table, column, values: list[str]) -> int:  # type: ignore[no-untyped-def]
    total = 0
    for i in range(0, len(values), 500):
        chunk = values[i : i + 500]
        total += conn.execute(select(func.count()).select_from(table).where(column.in_(chunk))).scalar_one()
    return total


def _delete_in(conn, table, column, values: list[str]) -> None:  # type: ignore[no-untyped-def]
    for i in range(0, len(values), 500):
        conn.execute(delete(table).where(column.in_(values[i : i + 500])))
