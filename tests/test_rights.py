"""Rights requests: lifecycle and deadlines (pure), access, correction and crypto-shredding erasure."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

import pytest
from compliance_fixtures import notice_data

from compliance.audit import AuditEvent
from compliance.consent import ConsentAction
from compliance.notices import parse_notice
from compliance.pseudonyms import MemberErasedError, pseudonym_of
from compliance.rights import LifecycleError, RequestKind, Step, new_request, working_days_after
from compliance.rights_service import RequestRefused
from ledger.export import export_log, verify_export
from node.runtime import Node

FRIDAY = date(2026, 11, 20)


def test_working_days_skip_weekends() -> None:
    assert working_days_after(FRIDAY, 1) == date(2026, 11, 23)
    assert working_days_after(FRIDAY, 15) == date(2026, 12, 11)


def test_a_request_is_due_15_working_days_after_receipt() -> None:
    req = new_request("a" * 32, RequestKind.ERASURE, at=datetime(2026, 11, 20, 9, tzinfo=UTC))
    assert req.deadline == date(2026, 12, 11)
    assert not req.overdue(date(2026, 12, 11))
    assert req.overdue(date(2026, 12, 12))
    assert not req.advance(Step.VERIFIED).advance(Step.COMPLETED).overdue(date(2027, 1, 1))


@pytest.mark.parametrize(
    "steps",
    [[Step.COMPLETED], [Step.VERIFIED, Step.RECEIVED], [Step.VERIFIED, Step.COMPLETED, Step.REFUSED]],
)
def test_steps_must_follow_the_lifecycle(steps: list[Step]) -> None:
    req = new_request("a" * 32, RequestKind.ACCESS)
    for s in steps[:-1]:
        req = req.advance(s, reason_code="x")
    with pytest.raises(LifecycleError):
        req.advance(steps[-1], reason_code="x")


def test_a_refusal_needs_a_reason_code() -> None:
    with pytest.raises(LifecycleError, match="reason"):
        new_request("a" * 32, RequestKind.ACCESS).advance(Step.REFUSED)


@pytest.fixture
def member(node: Node) -> str:
    """The reference of a member born in 1990 who allowed marketing under the test notice."""
    node.consent.publish_notice(parse_notice(notice_data()))
    node.consent.register_member("M-1", date(1990, 1, 1))
    node.consent.change("M-1", ["marketing"], ConsentAction.GRANT)
    return "M-1"


def test_access_returns_everything_held_machine_readable(node: Node, member: str) -> None:
    data = node.rights.access(member)
    assert data["member"]["member_ref"] == member
    assert [c["purpose"] for c in data["consent_history"]] == ["marketing"]
    assert len(data["receipts"]) == 1
    assert data["consent_decisions"]["marketing"]["allowed"]
    assert {e["action"] for e in data["audit_events"]} >= {"consent.grant", "dsr.received", "dsr.verified"}


def test_every_request_step_is_recorded_and_audited(node: Node, member: str) -> None:
    node.rights.access(member)
    [req] = node.rights.requests(member)
    assert [s.step for s in req.steps] == [Step.RECEIVED, Step.VERIFIED, Step.COMPLETED]
    actions = [e["action"] for e in node.audit.about(node.keyring.pseudonym(member, create=False))]
    assert actions[-3:] == ["dsr.received", "dsr.verified", "dsr.completed"]


def test_correction_changes_the_record_and_is_logged(node: Node, member: str) -> None:
    node.rights.correct(member, birth_date=date(1991, 2, 3))
    assert node.consent.store.member(member).birth_date == date(1991, 2, 3)
    pseudonym = node.keyring.pseudonym(member, create=False)
    assert "pi.update" in [e["action"] for e in node.audit.about(pseudonym)]


def test_erasure_shreds_the_member_and_leaves_the_ledger_verifiable_but_unlinkable(node: Node, member: str) -> None:
    pseudonym = node.keyring.pseudonym(member, create=False)
    assert node.audit.about(pseudonym)  # the audit log names this pseudonym
    node.rights.erase(member)
    assert node.consent.store.member(member) is None
    with pytest.raises(MemberErasedError):
        node.keyring.pseudonym(member, create=False)
    buf = io.BytesIO()
    export_log(node.store.log("audit"), node.signer, buf)
    buf.seek(0)
    assert verify_export(buf, node.signer.verifier()).size == node.store.log("audit").size
    # without the shredded key, no one can recompute the pseudonym; a new key gives another one
    assert pseudonym_of(b"\x00" * 32, node.settings.node_id, node.cipher.index(member)) != pseudonym
    node.consent.register_member(member)
    assert node.keyring.pseudonym(member, create=False) != pseudonym


def test_erasure_under_legal_hold_is_refused_with_a_reason_and_audited(node: Node, member: str) -> None:
    node.consent.store.set_legal_hold(member, True)
    with pytest.raises(RequestRefused) as refused:
        node.rights.erase(member)
    assert refused.value.reason == "legal_hold"
    assert "complaints" in str(refused.value)
    [req] = node.rights.requests(member)
    assert req.state is Step.REFUSED
    assert node.consent.store.member(member) is not None


def _stuck_request(node: Node, member_ref: str, received: datetime) -> str:
    """A request verified on ``received`` and never finished (what a crash mid-request leaves)."""
    req = new_request(node.consent.member_pseudonym(member_ref), RequestKind.ACCESS, received)
    req = req.advance(Step.VERIFIED, received)
    node.consent.store.save_request(req)
    return req.dsr_id


def test_an_open_request_past_its_deadline_is_escalated_and_audited(node: Node, member: str) -> None:
    dsr_id = _stuck_request(node, member, datetime(2026, 10, 1, 9, tzinfo=UTC))
    late = node.rights.escalate(today=date(2026, 10, 23))  # 15 working days after 1 October is 22 October
    assert [r.dsr_id for r in late] == [dsr_id]
    event = AuditEvent.from_bytes(list(node.store.log("audit").entries())[-1].data)
    assert (event.action, event.dsr_id, event.reason_code) == ("dsr.escalated", dsr_id, "deadline_passed")


def test_a_request_on_its_last_day_is_not_escalated(node: Node, member: str) -> None:
    _stuck_request(node, member, datetime(2026, 10, 1, 9, tzinfo=UTC))
    assert node.rights.escalate(today=date(2026, 10, 22)) == []


def test_finished_requests_are_never_escalated(node: Node, member: str) -> None:
    node.rights.access(member)
    assert node.rights.escalate(today=date(2030, 1, 1)) == []
    assert node.rights.queue() == []


def test_the_staff_queue_lists_open_requests_earliest_deadline_first(node: Node, member: str) -> None:
    later = _stuck_request(node, member, datetime(2026, 11, 2, 9, tzinfo=UTC))
    sooner = _stuck_request(node, member, datetime(2026, 10, 1, 9, tzinfo=UTC))
    node.rights.access(member)
    assert [r.dsr_id for r in node.rights.queue()] == [sooner, later]


def test_access_includes_the_wallet_and_erasure_deletes_it(node: Node, member: str) -> None:
    from datetime import timedelta

    pseudonym = node.keyring.pseudonym(member, create=False)
    today = datetime.now(UTC).date()
    node.wallets.earn(pseudonym, 120, "purchase", today, today + timedelta(days=365), ref="order-7")
    wallet = node.rights.access(member)["wallet"]
    assert wallet["balance"] == 120
    assert [e["ref"] for e in wallet["journal"]] == ["order-7"]
    node.rights.erase(member)
    assert node.wallets.journal(pseudonym) == []
    assert node.wallets.balance(pseudonym, today) == 0
