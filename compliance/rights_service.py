"""Serving rights requests: access and copy, correction, erasure by crypto-shredding."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection

from compliance import outbox
from compliance.audit import DetailValue
from compliance.rights import RequestKind, RightsRequest, Step, new_request
from compliance.service import BirthDateError, ConsentService, check_birth_date
from compliance.store import MemberRecord

COMPLAINT_ROUTE = "the notice's rights.complaint contact, or the provincial CAC"
#: How long the result of an access request can be read again without a new request.
RESULT_TTL = timedelta(days=1)


def _member_json(record: MemberRecord) -> dict[str, Any]:
    return {
        "member_ref": record.member_ref,
        "birth_date": record.birth_date.isoformat() if record.birth_date else None,
        "guardian_ref": record.guardian_ref,
        "phone": record.phone,
        "legal_hold": record.legal_hold,
        "created_at": record.created_at.isoformat() if record.created_at else None,
    }


class RequestRefused(Exception):
    """A rights request refused, and why (``reason``, e.g. ``legal_hold``); the request records it too."""

    def __init__(self, request: RightsRequest, reason: str, message: str) -> None:
        super().__init__(message)
        self.request = request
        self.reason = reason


class DataSource(Protocol):
    """Another store holding data about members (wallets, scores ...): rights requests reach it too."""

    name: str

    def export_member(self, pseudonym: str) -> Any:
        """Everything it holds about the member, JSON-ready."""
        ...

    def erase_member(self, pseudonym: str) -> int:
        """Delete everything it holds about the member; return how many records went."""
        ...


@dataclass
class RightsService:
    """Rights requests of members authenticated by the brand's app (their identity is verified)."""

    consent: ConsentService
    events_about: Callable[[str], list[dict[str, Any]]]  # audit events naming a pseudonym
    under_hold: Callable[[str], bool] = lambda _pseudonym: False  # a legal hold placed by pseudonym
    sources: tuple[DataSource, ...] = ()  # every other store keyed by the member's pseudonym
    # run once an erasure has deleted everything: the storage's chance to drop old copies of the
    # deleted rows (the node checkpoints SQLite's write-ahead log); compliance knows no database
    after_erase: Callable[[], object] = lambda: None
    # run after a correction with the member's pseudonym, the request id and the fields corrected: the
    # node tells the other joint handlers of a purpose that uses them
    after_correct: Callable[[str, str, tuple[str, ...]], object] = lambda _m, _r, _f: None

    def _open(self, member_ref: str, kind: RequestKind) -> tuple[str, RightsRequest]:
        req = self.open_request(member_ref, kind)
        return req.member, req

    def open_request(
        self,
        member_ref: str,
        kind: RequestKind,
        details: Mapping[str, DetailValue] | None = None,
        then: Callable[[Connection, RightsRequest], object] | None = None,
    ) -> RightsRequest:
        """Receive and verify a request of the member's own authenticated app (each step audited, with
        ``details``); ``then`` writes the kind's own record in the receipt's transaction."""
        member = self.consent.member_pseudonym(member_ref)
        req = new_request(member, kind)
        self._step(req, Step.RECEIVED, details=details, then=None if then is None else lambda conn: then(conn, req))
        req = req.advance(Step.VERIFIED)
        self._step(req, Step.VERIFIED, details=details)
        return req

    def complete_request(
        self,
        req: RightsRequest,
        details: Mapping[str, DetailValue] | None = None,
        also: Sequence[tuple[str, dict[str, Any]]] = (),
        then: Callable[[Connection], object] | None = None,
    ) -> RightsRequest:
        """Complete a request answered later (a review): ``also`` are audit events recorded with the step,
        ``then`` writes the kind's own record in the step's transaction (its exception undoes both)."""
        req = req.advance(Step.COMPLETED)
        self._step(req, Step.COMPLETED, details=details, also=also, then=then)
        return req

    def _step(
        self,
        req: RightsRequest,
        step: Step,
        reason: str | None = None,
        details: Mapping[str, DetailValue] | None = None,
        also: Sequence[tuple[str, dict[str, Any]]] = (),
        then: Callable[[Connection], object] | None = None,
    ) -> None:
        event = {
            "subject_pseudo_ids": [req.member],
            "dsr_id": req.dsr_id,
            "outcome": "denied" if step is Step.REFUSED else "ok",
            "reason_code": reason,
            "details": {"kind": req.kind.value, "deadline": req.deadline.isoformat(), **(details or {})},
        }
        events = [(f"dsr.{step.value}", event), *also]
        if self.consent.current_actor is not None:
            actor = self.consent.current_actor()
            events = [(a, {"actor": actor} | f) for a, f in events]
        staged = outbox.with_ids(events)
        self.consent.store.save_request(req, staged, then)  # the step and its staged events: one transaction
        if self.consent.audit_batch is not None:
            self.consent.audit_batch(staged)
        else:
            for action, fields in staged:
                self.consent.audit(action, **fields)
        self.consent.store.outbox_appended([f["event_id"] for _, f in staged])

    def _finish(self, req: RightsRequest) -> RightsRequest:
        req = req.advance(Step.COMPLETED)
        self._step(req, Step.COMPLETED)
        return req

    def _refuse(self, req: RightsRequest, reason: str, message: str) -> None:
        req = req.advance(Step.REFUSED, reason_code=reason)
        self._step(req, Step.REFUSED, reason)
        raise RequestRefused(req, reason, f"{message} (reason {reason}; complaints: {COMPLAINT_ROUTE})")

    def refuse_request(self, req: RightsRequest, reason: str, message: str) -> None:
        """Refuse a request answered later (audited), and raise :class:`RequestRefused` with the complaint route."""
        self._refuse(req, reason, message)

    def export_for(self, member_ref: str, req: RightsRequest) -> dict[str, Any]:
        """The member's ``alliance-member-data/1`` export, made for request ``req`` (a portability request)."""
        return self._export(member_ref, req.member, req)

    def access(self, member_ref: str) -> dict[str, Any]:
        """Everything this node holds about the member, machine-readable (PIPL Art. 45): an access
        request, received, verified and completed (each step audited), and its result."""
        return self.request_access(member_ref)[1]

    def request_access(self, member_ref: str) -> tuple[RightsRequest, dict[str, Any]]:
        """Open and complete an access request; return it with its result (see :meth:`access`)."""
        member, req = self._open(member_ref, RequestKind.ACCESS)
        data = self._export(member_ref, member, req)
        return self._finish(req), data

    def access_result(
        self, member_ref: str, dsr_id: str, now: datetime | None = None
    ) -> tuple[RightsRequest, dict[str, Any]]:
        """The member's completed access request ``dsr_id`` and its result, read again: nothing is
        written, the request was audited when it was made. ``LookupError`` if the member made no such
        request; ``RequestRefused`` (``request_expired``) once it is older than :data:`RESULT_TTL`."""
        member = self.consent.member_pseudonym(member_ref)
        found = [r for r in self.consent.store.requests(member) if r.dsr_id == dsr_id]
        if not found or found[0].kind is not RequestKind.ACCESS or found[0].state is not Step.COMPLETED:
            raise LookupError(f"no completed access request {dsr_id}")
        req = found[0]
        if (now or datetime.now(UTC)) - req.received_at > RESULT_TTL:
            raise RequestRefused(req, "request_expired", "the result of an access request is kept for a day: ask again")
        return req, self._export(member_ref, member, req)

    def _export(self, member_ref: str, member: str, req: RightsRequest) -> dict[str, Any]:
        record = self.consent.store.member(member_ref)
        return {
            "format": "alliance-member-data/1",
            "node_id": self.consent.signer.name,
            "generated_at": datetime.now(UTC).isoformat(),
            "request_id": req.dsr_id,
            "member": _member_json(record) if record else None,
            "pseudonym": member,
            "consent_decisions": {
                code: {"allowed": d.allowed, "reason": d.reason.value}
                for code, d in self.consent.decisions(member_ref).items()
            },
            "consent_history": [
                {
                    "consent_id": r.consent_id,
                    "purpose": r.purpose_code,
                    "action": r.action.value,
                    "at": r.at.isoformat(),
                    "notice_version": r.notice_version,
                    "actor": r.actor,
                }
                for r in self.consent.store.history(member)
            ],
            "receipts": self.consent.store.receipts(member),
            "rights_requests": [
                {"id": r.dsr_id, "kind": r.kind.value, "state": str(r.state), "deadline": r.deadline.isoformat()}
                for r in self.consent.store.requests(member)
            ],
            "audit_events": self.events_about(member),
        } | {source.name: source.export_member(member) for source in self.sources}

    def correct(self, member_ref: str, *, birth_date: date | None = None, phone: str | None = None) -> RightsRequest:
        """Correct the member's own data; the other joint handlers of a purpose using a corrected field are told."""
        _, req = self._open(member_ref, RequestKind.CORRECTION)
        if birth_date is None and phone is None:
            self._refuse(req, "nothing_to_correct", "the request names no field to correct")
        fields: list[str] = []
        if birth_date is not None:
            try:
                check_birth_date(birth_date, datetime.now(UTC).date())
            except BirthDateError as exc:
                self._refuse(req, exc.reason, str(exc))
            self.consent.store.correct_member(member_ref, birth_date=birth_date)
            self.consent.audit(
                "pi.update", subject_pseudo_ids=[req.member], dsr_id=req.dsr_id, details={"field": "birth_date"}
            )
            fields.append("birth_date")
        if phone is not None:
            try:
                self.consent.set_phone(member_ref, phone)  # audited there
            except ValueError as exc:
                self._refuse(req, "invalid_phone", str(exc))
            fields.append("phone")
        self.after_correct(req.member, req.dsr_id, tuple(fields))
        return self._finish(req)

    def erase(self, member_ref: str) -> RightsRequest:
        """Delete the member's data and key: logs keep verifying, their pseudonym links to no one."""
        member, req = self._open(member_ref, RequestKind.ERASURE)
        record = self.consent.store.member(member_ref)
        if (record is not None and record.legal_hold) or self.under_hold(member):
            self._refuse(req, "legal_hold", "the data is under a legal hold: it is kept for storage only")
        for other in self.consent.store.requests(member):  # nothing is left waiting on a member who is gone
            if other.state not in (Step.COMPLETED, Step.REFUSED) and other.dsr_id != req.dsr_id:
                self._step(other.advance(Step.REFUSED, reason_code="member_erased"), Step.REFUSED, "member_erased")
        req = self._finish(req)  # audited while the pseudonym can still be named
        for source in self.sources:
            source.erase_member(member)
        self.consent.store.delete_member(member_ref)
        self.consent.keyring.shred(member_ref)
        self.after_erase()
        return req

    def requests(self, member_ref: str) -> list[RightsRequest]:
        """The member's requests with state and deadline."""
        return self.consent.store.requests(self.consent.member_pseudonym(member_ref))

    def overdue(self, today: date | None = None) -> list[RightsRequest]:
        """Open requests past their deadline (to escalate)."""
        day = today or datetime.now(UTC).date()
        return [r for r in self.consent.store.requests() if r.overdue(day)]

    def queue(self) -> list[RightsRequest]:
        """The staff queue: every open request, earliest deadline first."""
        open_ = [r for r in self.consent.store.requests() if r.state not in (Step.COMPLETED, Step.REFUSED)]
        return sorted(open_, key=lambda r: (r.deadline, r.received_at))

    def escalate(self, today: date | None = None) -> list[RightsRequest]:
        """Audit a ``dsr.escalated`` event for every open request past its deadline; return them.

        Meant for a daily job: a request stays in the escalation list, and is escalated again,
        every day until it is completed or refused.
        """
        day = today or datetime.now(UTC).date()
        late = self.overdue(day)
        for req in late:
            self.consent.audit(
                "dsr.escalated",
                subject_pseudo_ids=[req.member],
                dsr_id=req.dsr_id,
                outcome="error",
                reason_code="deadline_passed",
                details={"kind": req.kind.value, "deadline": req.deadline.isoformat(), "state": str(req.state)},
            )
        return late
