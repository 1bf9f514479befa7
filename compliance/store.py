"""Where compliance state lives: members, published notices, the consent history (append-only)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import Connection, Engine, LargeBinary, Text, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Column, Field, SQLModel

from compliance import outbox
from compliance.consent import ConsentAction, ConsentRecord
from compliance.fieldcrypt import FieldCipher
from compliance.notices import Notice, notice_bytes, parse_notice
from compliance.outbox import Staged
from compliance.read_once import forget, memoised
from compliance.rights import RequestKind, RightsRequest, Step, StepRecord, rebuild


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes; everything here is stored in UTC
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class MemberRow(SQLModel, table=True):
    """A member as stored: identifiers and the birth date sealed, found by blind index (PIPL Art. 51)."""

    __tablename__ = "compliance_member"
    ref_index: str = Field(primary_key=True, max_length=64)
    ref_sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    birth_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    guardian_index: str | None = Field(default=None, max_length=64, index=True)
    guardian_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    # the shared identifier of cross-brand runs (E.164), optional; read only by the alignment's cohort
    phone_index: str | None = Field(default=None, max_length=64, index=True)
    phone_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    legal_hold: bool = False  # storage only: erasure is refused while set (PIPL Art. 47 para. 2)
    created_at: datetime = Field(default_factory=_now)


@dataclass(frozen=True)
class MemberRecord:
    """A member of this brand, opened: the brand's own reference and what the gates need to know."""

    member_ref: str
    birth_date: date | None = None
    guardian_ref: str | None = None
    legal_hold: bool = False
    created_at: datetime | None = None
    phone: str | None = None


class NoticeRecord(SQLModel, table=True):
    """A published notice version, kept verbatim (``GET /v1/notices/{v}`` serves these bytes)."""

    __tablename__ = "compliance_notice"
    version: int = Field(primary_key=True)
    sha256: str = Field(max_length=64)
    body: str = Field(sa_column=Column(Text, nullable=False))
    published_at: datetime


class ConsentRow(SQLModel, table=True):
    """One consent record; rows are only ever inserted."""

    __tablename__ = "compliance_consent"
    consent_id: str = Field(primary_key=True, max_length=32)
    member: str = Field(index=True, max_length=64)
    purpose_code: str = Field(max_length=250)
    action: str = Field(max_length=16)
    notice_version: int
    notice_sha256: str = Field(max_length=64)
    at: datetime
    actor: str = Field(max_length=250)
    collection_method: str = Field(max_length=50)
    expires_at: datetime | None = None
    receipt: str = Field(sa_column=Column(Text, nullable=False))


class RightsRequestRow(SQLModel, table=True):
    """A rights request: who (pseudonym), what, when received."""

    __tablename__ = "compliance_dsr"
    dsr_id: str = Field(primary_key=True, max_length=32)
    member: str = Field(index=True, max_length=64)
    kind: str = Field(max_length=20)
    received_at: datetime


class RightsStepRow(SQLModel, table=True):
    """One lifecycle step of a request (append-only)."""

    __tablename__ = "compliance_dsr_step"
    dsr_id: str = Field(primary_key=True, max_length=32)
    step: str = Field(primary_key=True, max_length=20)
    at: datetime
    reason_code: str | None = Field(default=None, max_length=100)


TABLES = [
    t.__table__ for t in (MemberRow, NoticeRecord, ConsentRow, RightsRequestRow, RightsStepRow, outbox.AuditOutboxRow)
]


class DuplicateError(ValueError):
    """The thing already exists (a member, a notice version)."""


class ComplianceStore:
    """Reads and appends of compliance state; no update or delete of consent history."""

    def __init__(self, engine: Engine, cipher: FieldCipher) -> None:
        self.engine = engine
        self.cipher = cipher
        self._parsed: dict[int, Notice] = {}
        self._appended: list[str] = []  # outbox events now in the audit log, cleared with the next change
        self._appended_lock = threading.Lock()

    def outbox_appended(self, event_ids: Iterable[str]) -> None:
        """Note staged events that reached the audit log; their rows go with the next staging."""
        with self._appended_lock:
            self._appended.extend(event_ids)

    def outbox_pending(self) -> tuple[int, datetime | None]:
        """How many staged audit events are not yet in the audit log, and when the oldest was staged.

        Rows of events already appended stay until the next change clears them: they are not counted.
        """
        t = outbox.AuditOutboxRow.__table__
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.event_id, t.c.staged_at)).all()
        with self._appended_lock:
            done = set(self._appended)
        pending = [r.staged_at for r in rows if r.event_id not in done]
        return len(pending), min(pending, default=None)

    def _take_appended(self) -> list[str]:
        # if the transaction that clears them fails, the rows stay and recovery clears them on open
        with self._appended_lock:
            taken, self._appended = self._appended, []
        return taken

    def create_schema(self) -> None:
        """Create the tables if missing."""
        SQLModel.metadata.create_all(self.engine, tables=TABLES)

    # members: every identifier sealed, looked up by blind index
    def _member_row(self, member_ref: str, birth_date: date | None, guardian_ref: str | None) -> dict[str, object]:
        c = self.cipher
        return {
            "ref_index": c.index(member_ref),
            "ref_sealed": c.seal(member_ref, "member.ref"),
            "birth_sealed": c.seal(birth_date.isoformat(), "member.birth_date") if birth_date else None,
            "guardian_index": c.index(guardian_ref) if guardian_ref else None,
            "guardian_sealed": c.seal(guardian_ref, "member.guardian") if guardian_ref else None,
            "legal_hold": False,
            "created_at": _now(),
        }

    def _open_member(self, row: object) -> MemberRecord:
        c = self.cipher
        r = row._mapping  # type: ignore[attr-defined]
        return MemberRecord(
            member_ref=c.open(r["ref_sealed"], "member.ref"),
            birth_date=date.fromisoformat(c.open(r["birth_sealed"], "member.birth_date"))
            if r["birth_sealed"]
            else None,
            guardian_ref=c.open(r["guardian_sealed"], "member.guardian") if r["guardian_sealed"] else None,
            legal_hold=bool(r["legal_hold"]),
            created_at=_aware(r["created_at"]),
            phone=c.open(r["phone_sealed"], "member.phone") if r["phone_sealed"] else None,
        )

    def add_member(self, member_ref: str, birth_date: date | None, guardian_ref: str | None) -> None:
        """Register a member; :class:`DuplicateError` if the reference is taken."""
        forget()
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(MemberRow.__table__).values(**self._member_row(member_ref, birth_date, guardian_ref))
                )
        except IntegrityError as exc:
            raise DuplicateError(f"member {member_ref!r} is already registered") from exc

    def add_members(self, members: list[tuple[str, date | None, str | None]]) -> None:
        """Register many members in one transaction (:class:`DuplicateError` if any exists)."""
        forget()
        rows = [self._member_row(ref, born, guardian) for ref, born, guardian in members]
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(MemberRow.__table__), rows)
        except IntegrityError as exc:
            raise DuplicateError("some of these members are already registered") from exc

    def delete_member(self, member_ref: str) -> bool:
        """Remove a member's record (erasure); return whether there was one."""
        forget()
        t = MemberRow.__table__
        with self.engine.begin() as conn:
            return conn.execute(delete(t).where(t.c.ref_index == self.cipher.index(member_ref))).rowcount == 1

    def correct_member(self, member_ref: str, *, birth_date: date | None) -> None:
        """Correct a member's own data (PIPL Art. 46)."""
        forget()
        t = MemberRow.__table__
        sealed = self.cipher.seal(birth_date.isoformat(), "member.birth_date") if birth_date else None
        with self.engine.begin() as conn:
            conn.execute(update(t).where(t.c.ref_index == self.cipher.index(member_ref)).values(birth_sealed=sealed))

    def set_phones(self, phones: Iterable[tuple[str, str | None]]) -> None:
        """Record (or with ``None`` remove) members' normalised phone numbers, sealed with a blind index,
        in one transaction."""
        forget()
        t = MemberRow.__table__
        c = self.cipher
        rows = [
            {
                "ref": c.index(ref),
                "phone_index": c.index(phone) if phone else None,
                "phone_sealed": c.seal(phone, "member.phone") if phone else None,
            }
            for ref, phone in phones
        ]
        if not rows:
            return
        statement = (
            update(t)
            .where(t.c.ref_index == bindparam("ref"))
            .values(phone_index=bindparam("phone_index"), phone_sealed=bindparam("phone_sealed"))
        )
        with self.engine.begin() as conn:
            conn.execute(statement, rows)

    def phones(self) -> dict[str, str]:
        """Every registered phone number by the member's reference index (opened: callers keep them in memory)."""
        t = MemberRow.__table__
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.ref_index, t.c.phone_sealed).where(t.c.phone_sealed.is_not(None))).all()
        return {r.ref_index: self.cipher.open(r.phone_sealed, "member.phone") for r in rows}

    def set_legal_hold(self, member_ref: str, held: bool) -> None:
        """Mark a member's record as kept for storage only (erasure refused) or release it."""
        forget()
        t = MemberRow.__table__
        with self.engine.begin() as conn:
            conn.execute(update(t).where(t.c.ref_index == self.cipher.index(member_ref)).values(legal_hold=held))

    # rights requests
    def save_request(
        self,
        req: RightsRequest,
        audit_events: list[Staged] | None = None,
        then: Callable[[Connection], object] | None = None,
    ) -> None:
        """Store a request's new steps (and the request itself the first time), staging their audit events;
        ``then`` writes more in the same transaction (its exception undoes it all)."""
        with self.engine.begin() as conn:
            outbox.stage(conn, audit_events or [], self._take_appended())
            known = {
                r
                for r in conn.execute(
                    select(RightsStepRow.__table__.c.step).where(RightsStepRow.__table__.c.dsr_id == req.dsr_id)
                ).scalars()
            }
            if not known:
                conn.execute(
                    insert(RightsRequestRow.__table__).values(
                        dsr_id=req.dsr_id, member=req.member, kind=req.kind.value, received_at=req.received_at
                    )
                )
            new = [s for s in req.steps if s.step.value not in known]
            if new:
                conn.execute(
                    insert(RightsStepRow.__table__),
                    [{"dsr_id": s.dsr_id, "step": s.step.value, "at": s.at, "reason_code": s.reason_code} for s in new],
                )
            if then is not None:
                then(conn)

    def requests(self, member: str | None = None) -> list[RightsRequest]:
        """Requests (of one member, or all), oldest first, with their derived state."""
        rt, st = RightsRequestRow.__table__, RightsStepRow.__table__
        with self.engine.connect() as conn:
            query = select(rt).order_by(rt.c.received_at)
            if member is not None:
                query = query.where(rt.c.member == member)
            heads = conn.execute(query).all()
            steps_query = select(st)
            if member is not None:
                steps_query = steps_query.where(st.c.dsr_id.in_([h.dsr_id for h in heads]))
            steps = conn.execute(steps_query).all()
        by_id: dict[str, list[StepRecord]] = {}
        for s in steps:
            by_id.setdefault(s.dsr_id, []).append(StepRecord(s.dsr_id, Step(s.step), _aware(s.at), s.reason_code))  # type: ignore[arg-type]
        return [rebuild(h.member, RequestKind(h.kind), by_id.get(h.dsr_id, [])) for h in heads]

    def members(self, member_refs: list[str]) -> dict[str, MemberRecord]:
        """The registered members among ``member_refs``, by reference."""
        t = MemberRow.__table__
        found: dict[str, MemberRecord] = {}
        indexes = [self.cipher.index(m) for m in member_refs]
        with self.engine.connect() as conn:
            for start in range(0, len(indexes), 500):
                rows = conn.execute(select(t).where(t.c.ref_index.in_(indexes[start : start + 500]))).all()
                found |= {m.member_ref: m for m in map(self._open_member, rows)}
        return found

    def member(self, member_ref: str) -> MemberRecord | None:
        """The member, or None."""
        return memoised(("member", member_ref), lambda: self._member(member_ref))

    def _member(self, member_ref: str) -> MemberRecord | None:
        t = MemberRow.__table__
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.ref_index == self.cipher.index(member_ref))).first()
        return None if row is None else self._open_member(row)

    # notices
    def add_notice(self, notice: Notice) -> None:
        """Store a published notice verbatim; versions are never replaced."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(NoticeRecord.__table__).values(
                        version=notice.version,
                        sha256=notice.sha256(),
                        body=notice_bytes(notice).decode(),
                        published_at=notice.published_at,
                    )
                )
        except IntegrityError as exc:
            raise DuplicateError(f"notice version {notice.version} is already published") from exc

    def notices(self) -> dict[int, Notice]:
        """Every published notice by version.

        A published version never changes (there is no update path), so each is parsed once per
        store; only the list of versions is read each time, and a new version is picked up at once.
        """
        return memoised("notices", self._notices)

    def _notices(self) -> dict[int, Notice]:
        import json

        t = NoticeRecord.__table__
        with self.engine.connect() as conn:
            versions = conn.execute(select(t.c.version)).scalars().all()
            missing = [v for v in versions if v not in self._parsed]
            if missing:
                for body in conn.execute(select(t.c.body).where(t.c.version.in_(missing))).scalars():
                    notice = parse_notice(json.loads(body))
                    self._parsed[notice.version] = notice
        return {v: self._parsed[v] for v in sorted(versions)}

    def notice_text(self, version: int) -> str | None:
        """The exact published bytes of one notice version."""
        t = NoticeRecord.__table__
        with self.engine.connect() as conn:
            return conn.execute(select(t.c.body).where(t.c.version == version)).scalar_one_or_none()

    # consent
    def append_consents(self, records: list[ConsentRecord], receipt: str) -> None:
        """Append records (one consent change) with the receipt that covers them, atomically."""
        self.append_consent_changes([(records, receipt)])

    def append_consent_changes(
        self,
        changes: list[tuple[list[ConsentRecord], str]],
        audit_events: list[Staged] | None = None,
        also: Callable[[Connection], object] | None = None,
    ) -> None:
        """Append many consent changes (each: its records and their receipt) in one transaction,
        with their audit events staged in the outbox in that same transaction, and whatever ``also``
        writes there (the notices a withdrawal owes other joint handlers)."""
        forget()
        rows = [
            {
                "consent_id": r.consent_id,
                "member": r.member,
                "purpose_code": r.purpose_code,
                "action": r.action.value,
                "notice_version": r.notice_version,
                "notice_sha256": r.notice_sha256,
                "at": r.at,
                "actor": r.actor,
                "collection_method": r.collection_method,
                "expires_at": r.expires_at,
                "receipt": receipt,
            }
            for records, receipt in changes
            for r in records
        ]
        with self.engine.begin() as conn:
            conn.execute(insert(ConsentRow.__table__), rows)
            outbox.stage(conn, audit_events or [], self._take_appended())
            if also is not None:
                also(conn)

    def history(self, member: str) -> list[ConsentRecord]:
        """Every consent record of a member (by pseudonym), oldest first."""
        return memoised(("history", member), lambda: self._history(member))

    def _history(self, member: str) -> list[ConsentRecord]:
        t = ConsentRow.__table__
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c.member == member).order_by(t.c.at)).all()
        return [_consent_record(r) for r in rows]

    def histories_of_purpose(self, purpose_code: str) -> dict[str, list[ConsentRecord]]:
        """Every member's records for one purpose, by pseudonym, oldest first (one read for a cohort)."""
        t = ConsentRow.__table__
        out: dict[str, list[ConsentRecord]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(select(t).where(t.c.purpose_code == purpose_code).order_by(t.c.at)):
                out.setdefault(r.member, []).append(_consent_record(r))
        return out

    def birth_dates(self) -> dict[str, date | None]:
        """Every registered member's birth date (None if not given), by blind index of their reference."""
        t = MemberRow.__table__
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.ref_index, t.c.birth_sealed)).all()
        return {
            r.ref_index: date.fromisoformat(self.cipher.open(r.birth_sealed, "member.birth_date"))
            if r.birth_sealed
            else None
            for r in rows
        }

    def receipts(self, member: str) -> list[str]:
        """Every receipt issued to a member, oldest first."""
        t = ConsentRow.__table__
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.receipt).where(t.c.member == member).order_by(t.c.at)).scalars().all()
        return list(dict.fromkeys(rows))  # one receipt covers every record of a change

    # figures for reports (PIA, PIPO threshold)
    def member_count(self) -> int:
        """How many members are registered."""
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(MemberRow.__table__)).scalar_one()

    def consent_tally(self) -> dict[str, int]:
        """How many members' latest record for each purpose is a grant or renewal (expiry aside)."""
        t = ConsentRow.__table__
        latest: dict[tuple[str, str], str] = {}
        with self.engine.connect() as conn:
            for member, purpose, action in conn.execute(
                select(t.c.member, t.c.purpose_code, t.c.action).order_by(t.c.at)
            ):
                latest[(member, purpose)] = action
        tally: dict[str, int] = {}
        for (_, purpose), action in latest.items():
            if action != ConsentAction.WITHDRAW.value:
                tally[purpose] = tally.get(purpose, 0) + 1
        return dict(sorted(tally.items()))


def _consent_record(r: object) -> ConsentRecord:
    return ConsentRecord(
        member=r.member,  # type: ignore[attr-defined]
        purpose_code=r.purpose_code,  # type: ignore[attr-defined]
        action=ConsentAction(r.action),  # type: ignore[attr-defined]
        notice_version=r.notice_version,  # type: ignore[attr-defined]
        notice_sha256=r.notice_sha256,  # type: ignore[attr-defined]
        at=_aware(r.at),  # type: ignore[arg-type,attr-defined]
        actor=r.actor,  # type: ignore[attr-defined]
        collection_method=r.collection_method,  # type: ignore[attr-defined]
        expires_at=_aware(r.expires_at),  # type: ignore[attr-defined]
        consent_id=r.consent_id,  # type: ignore[attr-defined]
    )
