"""The consent service and the gate, on a real database: what members and data paths see."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from compliance_fixtures import consent_service, notice_data

from compliance.consent import ConsentAction, Reason
from compliance.notices import NoticeError, parse_notice
from compliance.pseudonyms import MemberErasedError
from compliance.receipts import ReceiptError, verify_receipt
from compliance.service import ConsentDenied, ConsentService, UnknownMemberError
from ledger import note

SIGNER = note.Signer.generate("airline.example")


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, action: str, **fields: Any) -> None:
        self.events.append((action, fields))

    def actions(self) -> list[str]:
        return [a for a, _ in self.events]


@pytest.fixture
def audit() -> Recorder:
    return Recorder()


@pytest.fixture
def service(tmp_path: Path, audit: Recorder) -> ConsentService:
    svc = consent_service(tmp_path, audit, SIGNER)
    svc.register_member("M-1", date(1990, 5, 1))
    return svc


ALL = ["joint_modeling", "personalization", "marketing", "points_exchange:coffee.example"]


def test_accept_all_writes_one_record_per_purpose(service: ConsentService) -> None:
    service.change("M-1", ALL, ConsentAction.GRANT)
    member = service.keyring.pseudonym("M-1", create=False)
    history = service.store.history(member)
    assert sorted(r.purpose_code for r in history) == sorted(ALL)
    assert len({r.consent_id for r in history}) == len(ALL)


def test_granting_personalization_creates_no_marketing_record(service: ConsentService) -> None:
    service.change("M-1", ["personalization"], ConsentAction.GRANT)
    member = service.keyring.pseudonym("M-1", create=False)
    assert [r.purpose_code for r in service.store.history(member)] == ["personalization"]
    assert not service.decisions("M-1")["marketing"].allowed


def test_withdrawal_takes_effect_for_the_very_next_use(service: ConsentService, audit: Recorder) -> None:
    service.change("M-1", ["joint_modeling"], ConsentAction.GRANT)
    assert service.check("M-1", "joint_modeling").allowed
    service.change("M-1", ["joint_modeling"], ConsentAction.WITHDRAW)
    with pytest.raises(ConsentDenied) as denied:
        service.check("M-1", "joint_modeling")
    assert denied.value.reason is Reason.WITHDRAWN
    assert audit.actions()[-2:] == ["consent.withdraw", "gate.denied"]


def test_withdrawal_keeps_the_history(service: ConsentService) -> None:
    service.change("M-1", ["marketing"], ConsentAction.GRANT)
    service.change("M-1", ["marketing"], ConsentAction.WITHDRAW)
    member = service.keyring.pseudonym("M-1", create=False)
    assert [r.action for r in service.store.history(member)] == [ConsentAction.GRANT, ConsentAction.WITHDRAW]


def test_a_provision_to_another_brand_without_its_consent_is_denied_and_audited(
    service: ConsentService, audit: Recorder
) -> None:
    with pytest.raises(ConsentDenied):
        service.check("M-1", "points_exchange:", recipient="bank.example")
    assert audit.events[-1][0] == "pi.provide.denied"
    assert audit.events[-1][1]["purpose_code"] == "points_exchange:bank.example"


def test_a_contract_only_member_can_still_use_the_loyalty_programme(service: ConsentService) -> None:
    assert service.check("M-1", "loyalty.core").reason is Reason.CONTRACT_BASIS


def test_receipts_verify_offline_and_name_the_third_party(service: ConsentService) -> None:
    signed = service.change("M-1", ["points_exchange:coffee.example"], ConsentAction.GRANT)
    receipt = verify_receipt(signed, SIGNER.verifier())
    [purpose] = receipt["purposes"]
    assert purpose["thirdPartyName"] == ["coffee.example"]
    assert receipt["policy"]["noticeVersion"] == 1


def test_an_altered_receipt_fails_verification(service: ConsentService) -> None:
    signed = service.change("M-1", ["marketing"], ConsentAction.GRANT)
    with pytest.raises(ReceiptError):
        verify_receipt(signed.replace("marketing", "marketinG", 1), SIGNER.verifier())


def test_a_widening_notice_blocks_the_purpose_until_renewal(service: ConsentService) -> None:
    service.change("M-1", ["joint_modeling", "personalization"], ConsentAction.GRANT)
    data = notice_data(version=2)
    data["purposes"]["joint_modeling"]["pi_categories"].append("purchase.history")
    data["pi_collected"].append("purchase.history")
    service.publish_notice(parse_notice(data))
    assert service.decisions("M-1")["joint_modeling"].reason is Reason.RENEWAL_REQUIRED
    assert service.decisions("M-1")["personalization"].allowed
    service.change("M-1", ["joint_modeling"], ConsentAction.RENEW)
    assert service.check("M-1", "joint_modeling").allowed


def test_notice_versions_follow_each_other(service: ConsentService) -> None:
    with pytest.raises(NoticeError, match="next notice version is 2"):
        service.publish_notice(parse_notice(notice_data(version=3)))


def test_a_child_needs_a_guardian_and_stays_out_of_modeling(service: ConsentService) -> None:
    with pytest.raises(ValueError, match="guardian"):
        service.register_member("KID", date.today().replace(year=date.today().year - 10))
    service.register_member("KID", date.today().replace(year=date.today().year - 10), guardian_ref="M-1")
    with pytest.raises(PermissionError):
        service.change("KID", ["marketing"], ConsentAction.GRANT)
    service.change("KID", ["joint_modeling"], ConsentAction.GRANT, actor="guardian:M-1")
    assert service.decisions("KID")["joint_modeling"].reason is Reason.MINOR_EXCLUDED
    assert service.check("KID", "loyalty.core").allowed


def test_unknown_members_are_a_clear_error(service: ConsentService) -> None:
    with pytest.raises(UnknownMemberError):
        service.change("NOBODY", ["marketing"], ConsentAction.GRANT)


def test_a_shredded_member_can_no_longer_be_resolved(service: ConsentService) -> None:
    assert service.keyring.shred("M-1")
    with pytest.raises(MemberErasedError):
        service.check("M-1", "loyalty.core")


def test_at_one_million_members_a_notice_without_the_pipo_contact_is_refused(
    service: ConsentService, monkeypatch: pytest.MonkeyPatch
) -> None:
    # registering a million members would take minutes; the threshold is what is under test
    monkeypatch.setattr(service.store, "member_count", lambda: 1_000_000)
    with pytest.raises(NoticeError, match="pipo_contact"):
        service.publish_notice(parse_notice(notice_data(version=2)))
    handler = notice_data()["handler"] | {"pipo_contact": "pipo@airline.example, +86 21 5555 0100"}
    assert service.publish_notice(parse_notice(notice_data(version=2, handler=handler))).version == 2


def test_below_one_million_members_the_pipo_contact_is_optional(
    service: ConsentService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service.store, "member_count", lambda: 999_999)
    assert service.publish_notice(parse_notice(notice_data(version=2))).version == 2
