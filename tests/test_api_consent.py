"""The consent API end to end: notices, member tokens, grant and withdraw, receipts, audit."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from api_fixtures import open_api
from compliance_fixtures import notice_data

from compliance.audit import AuditEvent
from compliance.receipts import verify_receipt
from ledger import note
from node.core.auth import Role
from node.core.settings import VKEY_FILE
from node.runtime import Node


@pytest.fixture
def api(tmp_path: Path):  # type: ignore[no-untyped-def]
    a = open_api(tmp_path / "n", ("M-1",))
    yield a.client, a.node, a.members["M-1"], a.officer, tmp_path / "n"
    a.node.dispose()


def _audit_events(node: Node) -> list[AuditEvent]:
    return [AuditEvent.from_bytes(e.data) for e in node.store.log("audit").entries()]


def test_nothing_optional_is_on_for_a_new_member(api) -> None:  # type: ignore[no-untyped-def]
    client, _, me, _, _ = api
    states = client.get("/v1/me/consents", headers=me).json()
    assert states
    assert not any(s["allowed"] for s in states)


def test_grant_then_withdraw_with_the_same_token(api) -> None:  # type: ignore[no-untyped-def]
    client, _, me, _, data_dir = api
    r = client.post("/v1/me/consents", json={"action": "grant", "purposes": ["joint_modeling"]}, headers=me)
    assert r.status_code == 200
    vkey = note.Verifier.from_vkey((data_dir / VKEY_FILE).read_text())
    assert verify_receipt(r.json()["receipt"], vkey)["purposes"][0]["purpose"] == "joint_modeling"
    assert {s["purpose"]: s["allowed"] for s in client.get("/v1/me/consents", headers=me).json()}["joint_modeling"]
    r = client.post("/v1/me/consents", json={"action": "withdraw", "purposes": ["joint_modeling"]}, headers=me)
    assert r.status_code == 200
    state = {s["purpose"]: s for s in client.get("/v1/me/consents", headers=me).json()}["joint_modeling"]
    assert state == {"purpose": "joint_modeling", "allowed": False, "reason": "consent_withdrawn"}
    assert len(client.get("/v1/me/receipts", headers=me).json()) == 2


def test_consent_changes_are_audited_under_the_pseudonym_only(api) -> None:  # type: ignore[no-untyped-def]
    client, node, me, _, _ = api
    client.post("/v1/me/consents", json={"action": "grant", "purposes": ["marketing", "personalization"]}, headers=me)
    events = [e for e in _audit_events(node) if e.action == "consent.grant"]
    assert sorted(e.purpose_code for e in events) == ["marketing", "personalization"]
    pseudonym = node.keyring.pseudonym("M-1", create=False)
    assert all(e.subject_pseudo_ids == (pseudonym,) and e.actor.id == pseudonym for e in events)
    assert not any(b"M-1" in e.data for e in node.store.log("audit").entries())


def test_the_notice_is_served_as_the_exact_bytes_consent_pinned(api) -> None:  # type: ignore[no-untyped-def]
    client, node, me, _, _ = api
    client.post("/v1/me/consents", json={"action": "grant", "purposes": ["marketing"]}, headers=me)
    [record] = node.consent.store.history(node.keyring.pseudonym("M-1", create=False))
    body = client.get(f"/v1/notices/{record.notice_version}").content
    assert hashlib.sha256(body).hexdigest() == record.notice_sha256


def test_an_incomplete_notice_is_refused_naming_the_missing_field(api) -> None:  # type: ignore[no-untyped-def]
    client, _, _, officer, _ = api
    bad = notice_data(version=2)
    del bad["rights"]["withdraw_consent"]
    r = client.post("/v1/notices", json=bad, headers=officer)
    assert r.status_code == 422
    assert "withdraw_consent" in r.json()["detail"]


def test_unknown_purposes_and_empty_changes_are_4xx(api) -> None:  # type: ignore[no-untyped-def]
    client, _, me, _, _ = api
    assert client.post("/v1/me/consents", json={"action": "grant", "purposes": ["spam"]}, headers=me).status_code == 422
    assert client.post("/v1/me/consents", json={"action": "grant", "purposes": []}, headers=me).status_code == 422
    assert (
        client.post("/v1/me/consents", json={"action": "sell", "purposes": ["marketing"]}, headers=me).status_code
        == 422
    )
    core = client.post("/v1/me/consents", json={"action": "grant", "purposes": ["loyalty.core"]}, headers=me)
    assert core.status_code == 422


def test_a_compliance_officer_downloads_a_bundle_that_verifies_offline(api, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client, node, me, officer, data_dir = api
    client.post("/v1/me/consents", json={"action": "grant", "purposes": ["marketing"]}, headers=me)
    r = client.get("/v1/audit/bundle", params={"action": "consent.", "member": "M-1"}, headers=officer)
    assert r.status_code == 200
    from compliance.audit_bundle import verify_bundle

    verified = verify_bundle(io.BytesIO(r.content), note.Verifier.from_vkey((data_dir / VKEY_FILE).read_text()))
    assert verified.count == 1
    last = _audit_events(node)[-1]
    assert last.action == "audit.export"
    assert last.actor.role == "compliance"


def test_a_bad_audit_filter_is_422(api) -> None:  # type: ignore[no-untyped-def]
    client, _, _, officer, _ = api
    r = client.get(
        "/v1/audit/bundle", params={"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, headers=officer
    )
    assert r.status_code == 422


def _operator(node: Node) -> dict[str, str]:
    return {"Authorization": f"Bearer {node.staff_keys.issue('ops', Role.OPERATOR)}"}


def test_the_gate_endpoint_refuses_an_unconsented_purpose_with_its_reason(api) -> None:  # type: ignore[no-untyped-def]
    client, node, _, _, _ = api
    r = client.get("/v1/members/M-1/gate/marketing", headers=_operator(node))
    assert r.status_code == 403
    assert r.json()["reason_code"] == "no_consent"
    assert [e.action for e in _audit_events(node)][-1] == "gate.denied"


def test_the_gate_endpoint_sees_a_withdrawal_on_the_very_next_call(api) -> None:  # type: ignore[no-untyped-def]
    client, node, me, _, _ = api
    ops = _operator(node)
    client.post("/v1/me/consents", json={"action": "grant", "purposes": ["marketing"]}, headers=me)
    assert client.get("/v1/members/M-1/gate/marketing", headers=ops).json()["allowed"] is True
    client.post("/v1/me/consents", json={"action": "withdraw", "purposes": ["marketing"]}, headers=me)
    assert client.get("/v1/members/M-1/gate/marketing", headers=ops).status_code == 403


def test_the_gate_endpoint_asks_for_the_recipient_brands_own_consent(api) -> None:  # type: ignore[no-untyped-def]
    client, node, me, _, _ = api
    ops = _operator(node)
    client.post("/v1/me/consents", json={"action": "grant", "purposes": ["points_exchange:air"]}, headers=me)
    assert client.get("/v1/members/M-1/gate/points_exchange?recipient=air", headers=ops).status_code == 200
    assert client.get("/v1/members/M-1/gate/points_exchange?recipient=cafe", headers=ops).status_code == 403


def test_the_gate_endpoint_answers_404_for_an_unknown_member_and_422_for_an_unknown_purpose(api) -> None:  # type: ignore[no-untyped-def]
    client, node, _, _, _ = api
    ops = _operator(node)
    assert client.get("/v1/members/NOPE/gate/marketing", headers=ops).status_code == 404
    assert client.get("/v1/members/M-1/gate/astrology", headers=ops).status_code == 422
