"""Joint handlers (PIPL Art. 20): a member's withdrawal, correction or erasure at this brand reaches every
other brand that runs the purpose jointly, by signed peer calls, and theirs reach this one.

Sending: the notices a change owes are written with it (a withdrawal's, in its consent transaction;
an erasure's, before the links they name are ended), then delivered by :meth:`JointHandlers.deliver`,
which every recovery pass runs, retried with backoff until the other handler acknowledges.
Receiving: :meth:`JointHandlers.on_notice` records a notice once per sender and id, in the same
transaction as the withdrawal it makes, so a retry after a lost answer changes nothing and gets
the first answer. Both ends show the notices in their queue with the 15-working-day clock; one not
acknowledged by its due date is escalated by the daily duty.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol

from compliance.consent import ConsentAction, ConsentRecord
from compliance.joint import (
    JOINT_ACTOR,
    NOTICE_FIELDS,
    NOTICE_PURPOSE,
    NoticeKind,
    NoticeState,
    Planned,
    due_date,
    family,
    notice_id,
    plan_request,
    plan_withdrawals,
    receiver_state,
    withdrawals_for,
)
from compliance.joint_store import JointStore, Received, Sent
from compliance.purposes import catalogue
from compliance.service import ConsentChange, ConsentService
from node.core import faults
from node.core.audit import NodeAudit
from node.core.refusals import Refused
from node.peers.outbound import Outbound
from node.peers.registry import RegistryFile

log = logging.getLogger(__name__)

PATH = "/v1/peer/joint/notices"

#: What a corrected field is, in the catalogue's categories: a correction reaches the handlers of the
#: joint purposes that use it (a birth date is used by none: it never leaves the node).
FIELD_CATEGORIES = {"phone": "contact.basic"}


class MemberLinks(Protocol):
    """The pairwise links a notice names members by (``node.exchange.links.LinkStore``)."""

    def links_of(self, member: str) -> dict[str, str]: ...
    def member_of(self, peer: str, link_id: str, *, ended_too: bool = False) -> str | None: ...
    def member_ref(self, link_id: str) -> str | None: ...
    def unlink(self, member: str, peer: str, now: datetime | None = None) -> bool: ...


class Alignments(Protocol):
    """Alignments of runs under way (``node.learning.vertical_store.AlignmentStore``)."""

    def drop(self, member: str, peer: str | None = None) -> int: ...


@dataclass
class Delivery:
    """What one delivery pass did."""

    acknowledged: int = 0
    failed: int = 0


@dataclass
class JointHandlers:
    """This node as one of the joint handlers of the purposes the registry says the alliance runs jointly."""

    node_id: str
    registry: RegistryFile
    store: JointStore
    links: MemberLinks
    consent: ConsentService
    outbound: Outbound
    audit: NodeAudit
    alignments: Alignments

    name = "joint_notices"  # what an access request calls the member's notices

    def handlers(self, purpose: str) -> Sequence[str]:
        """The other joint handlers of ``purpose`` (empty if the alliance does not run it jointly)."""
        try:
            return self.registry.joint_handlers(purpose, self.node_id)
        except Refused:
            return ()

    def joint_purposes(self) -> list[str]:
        """The purposes this node runs jointly with others."""
        if not self.registry.exists():
            return []
        return [j.purpose for j in self.registry.registry.joint if self.node_id in j.handlers]

    # --- what a change owes -------------------------------------------------------------------

    def alongside(self, records: list[ConsentRecord]) -> Any:
        """The consent service's hook: the notices these records owe, written in their transaction."""
        planned = plan_withdrawals(records, self.handlers, self.links.links_of)
        if not planned:
            return None
        return lambda conn: JointStore.add_sent_in(conn, planned)

    def after_change(self, records: list[ConsentRecord]) -> None:
        """The consent service's after-change hook: a withdrawal of joint modeling takes the member out of
        runs already aligned (with every brand, or with the one brand named)."""
        for r in records:
            if r.action is ConsentAction.WITHDRAW and family(r.purpose_code) in self.joint_purposes():
                self.alignments.drop(r.member, r.purpose_code.partition(":")[2] or None)

    def erase_member(self, member: str) -> int:
        """Before erasure ends the member's links: a notice to every joint handler they are linked with."""
        planned = plan_request(
            NoticeKind.ERASURE,
            f"erasure:{member}",
            member,
            datetime.now(UTC),
            self.joint_purposes(),
            self.handlers,
            self.links.links_of(member),
        )
        return self.store.add_sent(planned)

    def after_correct(self, member: str, dsr_id: str, fields: Sequence[str]) -> int:
        """After a correction: a notice to the handlers of each joint purpose that uses a corrected field."""
        used = {FIELD_CATEGORIES[f] for f in fields if f in FIELD_CATEGORIES}
        purposes = [p for p in self.joint_purposes() if used & set(_categories(p))]
        planned = plan_request(
            NoticeKind.CORRECTION,
            dsr_id,
            member,
            datetime.now(UTC),
            purposes,
            self.handlers,
            self.links.links_of(member),
            tuple(sorted(fields)),
        )
        return self.store.add_sent(planned)

    def export_member(self, member: str) -> list[dict[str, Any]]:
        """The member's notices both ways, for their access request."""
        sent = [
            {
                "direction": "sent",
                "to": s.peer,
                "kind": s.kind.value,
                "purpose": s.purpose,
                "state": s.state.value,
                "due": s.due.isoformat(),
            }
            for s in self.store.sent(member)
        ]
        got = [
            {
                "direction": "received",
                "from": r.sender,
                "kind": r.kind.value,
                "purpose": r.purpose,
                "state": r.state.value,
                "due": r.due.isoformat(),
            }
            for r in self.store.received(member)
        ]
        return sent + got

    # --- delivery ------------------------------------------------------------------------------

    def deliver(self, now: datetime | None = None) -> Delivery:
        """Send every notice due; record each acknowledgement, or the failure and when to try again."""
        done = Delivery()
        down: set[str] = set()  # a handler that failed once in this pass is tried again at the next one
        for n in self.store.due_for_delivery(now):
            if n.peer in down:
                continue
            answer = self._send(n)
            if isinstance(answer, NoticeState):
                self.store.acknowledged(n.notice_id, answer)
                if answer is NoticeState.OPEN or answer.value == n.answer:
                    continue  # under way there (a person checks it), or no news: nothing to record yet
                self.audit(
                    "dsr.completed",
                    subject_pseudo_ids=[n.member],
                    dsr_id=n.notice_id,
                    details={
                        "kind": n.kind.value,
                        "joint_handler": n.peer,
                        "answer": answer.value,
                        "purpose": n.purpose,
                    },
                )
                done.acknowledged += 1
            else:
                self.store.failed(n.notice_id, answer)
                down.add(n.peer)
                done.failed += 1
        if done.failed:
            log.warning("joint-handler notices: %d not acknowledged yet (retried later)", done.failed)
        return done

    def _send(self, n: Sent) -> NoticeState | str:
        body = {
            "notice_id": n.notice_id,
            "kind": n.kind.value,
            "purpose": n.purpose,
            "link_id": n.link_id,
            "fields": list(n.fields),
            "due": n.due.isoformat(),
        }
        try:
            response = self.outbound.post(
                n.peer,
                PATH,
                json=body,
                fields=NOTICE_FIELDS,
                purpose=NOTICE_PURPOSE,
                cohort=[n.member],
                idempotent=True,
            )
        except Exception as exc:  # unreachable, refused by the egress check: tried again later
            return f"{type(exc).__name__}: {exc}"
        try:
            data = response.json()
        except ValueError:
            data = {}
        if response.status_code == 200 and isinstance(data, dict) and data.get("state") in set(NoticeState):
            return NoticeState(data["state"])
        reason = data.get("reason_code") if isinstance(data, dict) else None
        return f"HTTP {response.status_code}: {reason or 'no answer'}"

    # --- receiving ------------------------------------------------------------------------------

    def on_notice(self, sender: str, body: dict[str, Any], today: date | None = None) -> Received:
        """Record and apply a notice from another joint handler, once; answer what was done."""
        kind = NoticeKind(body["kind"])
        purpose, link_id, nid = str(body["purpose"]), str(body["link_id"]), str(body["notice_id"])
        kept = self.store.received_one(sender, nid)
        if kept is not None:  # a retry: redo what a crash may have cut short, all of it idempotent
            if kept.member is not None and not any(
                e.get("dsr_id") == nid and e.get("action") == "dsr.received" for e in self.audit.about(kept.member)
            ):
                self._audit_received(kept)
            self._finish(kept, sender)
            return kept
        if sender not in self.handlers(purpose):
            raise Refused("not_a_joint_handler", f"{sender} and {self.node_id} do not run {family(purpose)} jointly")
        member = self.links.member_of(sender, link_id, ended_too=True)
        ref = self.links.member_ref(link_id) if member is not None else None
        state = receiver_state(kind, ref is not None)
        now = datetime.now(UTC)
        record = Received(
            sender,
            nid,
            kind,
            purpose,
            member if ref is not None else None,
            tuple(str(f) for f in body.get("fields") or ()),
            now,
            # the member's clock started at the sender: a notice that arrives late keeps the sender's due date
            min(due_date(today or now.date()), date.fromisoformat(str(body["due"]))),
            state,
            now if state is not NoticeState.OPEN else None,
        )
        withdraw = withdrawals_for(kind, purpose, sender, self.node_id) if ref is not None else []
        faults.point("joint.before_record")
        if withdraw:
            assert ref is not None
            change = ConsentChange(
                ref,
                tuple(withdraw),
                ConsentAction.WITHDRAW,
                actor=f"{JOINT_ACTOR}{sender}",
                collection_method="joint_notice",
            )
            try:
                self.consent.change_many([change], also=lambda conn: JointStore.add_received_in(conn, record))
            except Exception:
                kept = self.store.received_one(sender, nid)  # a concurrent delivery of the same notice won
                if kept is None:
                    raise
                return kept
        else:
            record, new = self.store.receive(record)
            if not new:
                return record
        faults.point("joint.after_record")  # recorded, not yet answered: the sender must retry, once
        self._audit_received(record)
        self._finish(record, sender)
        return record

    def _finish(self, record: Received, sender: str) -> None:
        if record.member is None:
            return
        if record.kind is NoticeKind.ERASURE:  # erasure there ends the member's link and alignments with it here
            self.links.unlink(record.member, sender)
        if record.kind in (NoticeKind.ERASURE, NoticeKind.CORRECTION):
            self.alignments.drop(record.member, sender)  # made on data that is gone or was wrong

    def _audit_received(self, r: Received) -> None:
        common = {
            "subject_pseudo_ids": [r.member] if r.member else [],
            "dsr_id": r.notice_id,
            "purpose_code": r.purpose,
            "details": {
                "kind": r.kind.value,
                "joint_handler": r.sender,
                "state": r.state.value,
                "deadline": r.due.isoformat(),
            },
        }
        events: list[tuple[str, dict[str, Any]]] = [("dsr.received", common)]
        if r.state is not NoticeState.OPEN:
            events.append(("dsr.completed", common))
        self.audit.many(events)

    def complete(self, sender: str, nid: str) -> bool:
        """Staff finished an open notice (a correction checked); audited."""
        done = self.store.complete(sender, nid)
        if done:
            r = self.store.received_one(sender, nid)
            assert r is not None
            self.audit(
                "dsr.completed",
                subject_pseudo_ids=[r.member] if r.member else [],
                dsr_id=nid,
                purpose_code=r.purpose,
                details={"kind": r.kind.value, "joint_handler": sender},
            )
        return done

    # --- the queue ---------------------------------------------------------------------------------

    def queue(self, today: date | None = None) -> list[dict[str, Any]]:
        """Notices still under way, both ways, earliest due first, each saying if it is overdue."""
        return self.store.under_way(today or datetime.now(UTC).date())

    def escalate(self, today: date | None = None) -> int:
        """Audit ``dsr.escalated`` for every notice past its due date (a handler that does not answer)."""
        day = today or datetime.now(UTC).date()
        late = [r for r in self.queue(day) if r["overdue"]]
        for r in late:
            self.audit(
                "dsr.escalated",
                subject_pseudo_ids=[r["member"]] if r["member"] else [],
                dsr_id=r["notice"],
                outcome="error",
                reason_code="deadline_passed",
                purpose_code=r["purpose"],
                details={
                    "kind": r["kind"],
                    "joint_handler": r["peer"],
                    "direction": r["direction"],
                    "deadline": r["due"],
                },
            )
        return len(late)


def _categories(purpose: str) -> tuple[str, ...]:
    cat = catalogue()
    spec = cat.families.get(f"{purpose}:") or cat.families.get(purpose)
    return tuple(spec["pi_categories"]) if spec else ()


__all__ = ["PATH", "Delivery", "JointHandlers", "Planned", "notice_id"]
