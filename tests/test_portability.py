"""Portability (PIPL-DSR-02): a member's data sent to a brand they name, the request verified at both ends
(the member authenticated at each), sent by a signed peer call through the egress check, kept there only
as far as that brand's notice and the member's consents go, and audited at both."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from compliance.audit import AuditFilter
from compliance.portability import FIELDS, plan_import, portable
from compliance.portability_store import CodeRefused
from compliance.provisions import PROVISION_FILTER, report
from compliance.rights import RequestKind, Step
from compliance.rights_service import RequestRefused
from node.api.app import create_app
from node.core.refusals import Refused
from node.demo.vertical import shared_pair
from node.runtime import Node

PERSON = 50  # a member of both brands (the airline has 0-69, the shop 30-99)


@pytest.fixture(autouse=True)
def _quiet_flower() -> None:
    logging.getLogger("flwr").setLevel(logging.WARNING)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[dict[str, Node]]:
    nodes = shared_pair(tmp_path, 40, 30)
    air = nodes["airline"]
    air.loyalty.earn_purchase(ref(air), "p-1", 12_000, None)  # the member bought something at the airline
    yield nodes
    for node in nodes.values():
        node.dispose()


def ref(node: Node, person: int = PERSON) -> str:
    return f"{node.settings.node_id}:{person}"


def port(pair: dict[str, Node]) -> dict:  # type: ignore[type-arg]
    air, shop = pair["airline"], pair["shop"]
    code, _ = shop.portability.expect(ref(shop), air.settings.node_id)  # the member, signed in at the shop
    _, answer = air.portability.send(ref(air), shop.settings.node_id, code)  # and at the airline
    return answer


def portability_requests(node: Node) -> list:  # type: ignore[type-arg]
    return [r for r in node.rights.requests(ref(node)) if r.kind is RequestKind.PORTABILITY]


# --- the pure rules --------------------------------------------------------------------------------------


def test_the_portable_export_holds_the_members_data_and_none_of_the_nodes_own_records() -> None:
    export = {
        "format": "alliance-member-data/1",
        "generated_at": "t",
        "pseudonym": "p" * 32,
        "member": {"phone": "+8613900000001", "birth_date": "1990-01-01"},
        "wallet": {"balance": 5, "journal": [{"points": 5}], "lots": []},
        "purchases": [{"purchase_id": "p-1"}],
        "consent_history": [{}],
        "audit_events": [{}],
        "member_links": [{"link_id": "L"}],
    }
    body = portable(export, "CODE")
    assert set(body) == {"code", "format", "generated_at", "phone", "balance", "journal", "purchases"}
    assert set(body) <= set(FIELDS)


def test_a_field_whose_category_the_receiver_does_not_cover_is_skipped_with_the_reason() -> None:
    plan = plan_import({"phone": "+86139", "purchases": [], "balance": 3}, {"contact.basic", "loyalty.balance"})
    assert set(plan.kept) == {"phone", "balance"}
    assert set(plan.skipped) == {"purchases"}
    assert "purchase.history" in plan.skipped["purchases"]


# --- between two nodes -------------------------------------------------------------------------------------


def test_data_sent_with_the_code_the_receiver_issued_is_kept_there_and_both_requests_complete(
    pair: dict[str, Node],
) -> None:
    air, shop = pair["airline"], pair["shop"]
    answer = port(pair)
    assert "phone" in answer["kept"]
    assert "journal" in answer["kept"]
    [kept] = shop.rights.access(ref(shop))["ported_data"]
    assert kept["from"] == air.settings.node_id
    assert set(kept["kept"]) == set(answer["kept"])
    for node in (air, shop):
        assert [r.state for r in portability_requests(node)] == [Step.COMPLETED]


def test_both_ends_audit_it_and_the_sender_records_the_provision(pair: dict[str, Node]) -> None:
    air, shop = pair["airline"], pair["shop"]
    port(pair)
    [sent] = [
        p for p in report(air.audit.select(AuditFilter(action=PROVISION_FILTER))) if p.purpose == "rights.portability"
    ]
    assert (sent.recipient, sent.legal_basis, sent.individuals) == (shop.settings.node_id, "legal_obligation", 1)
    assert len(sent.signature_digest) == 64
    received = shop.audit.select(AuditFilter(action="pi.receive"))
    assert [e.details["from"] for _, e in received] == [air.settings.node_id]


def test_a_request_with_a_code_the_receiver_never_issued_is_refused_with_a_reason(pair: dict[str, Node]) -> None:
    air, shop = pair["airline"], pair["shop"]
    with pytest.raises(RequestRefused) as refused:
        air.portability.send(ref(air), shop.settings.node_id, "AAAA-BBBB-CCCC-DDDD")
    assert refused.value.reason == "unknown_code"
    assert "complaints" in str(refused.value)
    assert [r.state for r in portability_requests(air)] == [Step.REFUSED]
    assert shop.rights.access(ref(shop))["ported_data"] == []


def test_a_code_carries_one_export_once(pair: dict[str, Node]) -> None:
    air, shop = pair["airline"], pair["shop"]
    code, _ = shop.portability.expect(ref(shop), air.settings.node_id)
    air.portability.send(ref(air), shop.settings.node_id, code)
    with pytest.raises(RequestRefused) as again:
        air.portability.send(ref(air), shop.settings.node_id, code)
    assert again.value.reason == "used_code"


def test_a_code_issued_for_one_brand_is_refused_from_another(pair: dict[str, Node]) -> None:
    air, shop = pair["airline"], pair["shop"]
    code, _ = shop.portability.expect(ref(shop), air.settings.node_id)
    with pytest.raises(Refused) as refused:
        shop.portability.on_receive("coffee.alliance.example", {"code": code, "format": "alliance-member-data/1"})
    assert refused.value.reason == "unknown_code"


def test_an_expired_code_is_refused(pair: dict[str, Node]) -> None:
    air, shop = pair["airline"], pair["shop"]
    code, _ = shop.portability.expect(ref(shop), air.settings.node_id)
    with pytest.raises(CodeRefused) as refused:
        shop.portability.store.pending(code, air.settings.node_id, datetime.now(UTC) + timedelta(hours=1))
    assert refused.value.reason == "expired_code"


def test_a_brand_outside_the_registry_or_this_brand_itself_is_refused(pair: dict[str, Node]) -> None:
    air = pair["airline"]
    with pytest.raises(Refused) as unknown:
        air.portability.expect(ref(air), "stranger.example")
    assert unknown.value.reason == "unknown_brand"
    with pytest.raises(Refused) as same:
        air.portability.expect(ref(air), air.settings.node_id)
    assert same.value.reason == "same_brand"


def test_erasure_at_the_receiver_deletes_what_it_kept(pair: dict[str, Node]) -> None:
    shop = pair["shop"]
    port(pair)
    member = shop.consent.member_pseudonym(ref(shop))
    shop.rights.erase(ref(shop))
    assert shop.portability.store.export_member(member) == []


def test_a_member_moves_their_data_through_both_apis(pair: dict[str, Node]) -> None:
    air, shop = pair["airline"], pair["shop"]

    def client(node: Node) -> TestClient:
        token = node.member_tokens.issue(ref(node), 600)
        return TestClient(create_app(node), headers={"authorization": f"Bearer {token}"})

    issued = client(shop).post("/v1/me/portability/codes", json={"from": air.settings.node_id})
    assert issued.status_code == 201, issued.text
    sent = client(air).post("/v1/me/portability", json={"to": shop.settings.node_id, "code": issued.json()["code"]})
    assert sent.status_code == 200, sent.text
    assert sent.json()["request"]["state"] == "completed"
    assert "phone" in sent.json()["kept"]
    wrong = client(air).post("/v1/me/portability", json={"to": shop.settings.node_id, "code": "AAAA-BBBB"})
    assert (wrong.status_code, wrong.json()["reason_code"]) == (422, "unknown_code")
