"""Records of provision (PIPL-ROLE-03): every transfer of personal information to another node is
recorded with date, recipient, purpose, legal basis, PI categories, number of individuals and the
digest of the signed call that carried it; reported by recipient, time and member; kept past any purge."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from compliance.audit import AuditFilter
from compliance.audit_bundle import verify_bundle
from compliance.consent import ConsentAction
from compliance.provisions import PROVISION_FILTER, report, signature_digest
from federation.vertical_server import VerticalSettings
from node.cli.main import app
from node.core.refusals import Refused
from node.demo.vertical import shared_pair
from node.exchange.source import BATCH_FIELDS
from node.learning.rows import ChurnWindow
from node.learning.vertical_run import vertical_nodes
from node.runtime import Node

TODAY = datetime.now(UTC).date()
WINDOW = ChurnWindow(TODAY - timedelta(days=180), TODAY)
SHARED = 120


@pytest.fixture(autouse=True)
def _quiet_flower() -> None:
    logging.getLogger("flwr").setLevel(logging.WARNING)


@pytest.fixture
def brands(tmp_path: Path) -> Iterator[dict[str, Node]]:
    nodes = shared_pair(tmp_path, SHARED, 30)
    yield nodes
    for node in nodes.values():
        node.dispose()


class Recording(httpx.BaseTransport):
    """Passes calls on, keeping each request as it was sent."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner, self.sent = inner, []  # type: ignore[var-annotated]

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return self.inner.handle_request(request)


def record(node: Node) -> Recording:
    client = node.outbound.client
    recording = Recording(client._transport)
    node.outbound._client = httpx.Client(timeout=client.timeout, transport=recording)
    return recording


def provisions(node: Node, **criteria: object) -> list:  # type: ignore[type-arg]
    return report(node.audit.select(AuditFilter(action=PROVISION_FILTER, **criteria)))  # type: ignore[arg-type]


def align(brands: dict[str, Node], name: str = "p1") -> str:
    air, shop = brands["airline"], brands["shop"]
    run = f"{air.settings.node_id}/{name}"
    air.alignment.align(shop.settings.node_id, run)
    return run


def test_a_psi_call_is_recorded_with_every_field_of_a_record_of_provision(brands: dict[str, Node]) -> None:
    air, shop = brands["airline"], brands["shop"]
    align(brands)
    rows = provisions(air, recipient=shop.settings.node_id)
    assert rows
    for r in rows:
        assert r.recipient == shop.settings.node_id
        assert r.recipient_role == "joint"  # the registry declares joint modeling a joint purpose
        assert (r.purpose, r.legal_basis) == ("joint_modeling", "consent")
        assert r.pi_categories == "contact.basic"  # blinded phone numbers
        assert r.individuals > 0
        assert r.carried_by == "peer_call"
        assert len(r.signature_digest) == 64
    assert sum(r.individuals for r in rows) == SHARED + 30  # every member in the cohort, once


def test_the_record_cites_the_signature_of_the_very_call_that_carried_the_data(brands: dict[str, Node]) -> None:
    air = brands["airline"]
    sent = record(air)
    align(brands)
    carried = {signature_digest(r.headers["signature"]) for r in sent.sent}
    cited = {r.signature_digest for r in provisions(air)}
    assert cited
    assert cited <= carried


def test_data_sent_back_in_an_answer_is_recorded_against_the_call_it_answers(brands: dict[str, Node]) -> None:
    air, shop = brands["airline"], brands["shop"]
    sent = record(air)
    align(brands)
    asked = {signature_digest(r.headers["signature"]) for r in sent.sent if r.url.path.endswith("/theirs")}
    answers = [r for r in provisions(shop, recipient=air.settings.node_id) if r.carried_by == "answer"]
    assert answers
    assert {r.signature_digest for r in answers} <= asked


def test_a_vertical_run_records_each_release_of_scores_and_gradients(brands: dict[str, Node]) -> None:
    air, shop = brands["airline"], brands["shop"]
    vertical_nodes(air, [shop], "v1", WINDOW, VerticalSettings(run="v1", rounds=2, epochs=2), 50)
    by_flower = [r for r in provisions(shop, recipient=air.settings.node_id) if r.carried_by == "flower_message"]
    assert len(by_flower) >= 2  # one release of scores per round
    assert all(r.pi_categories == "derived.scores" and len(r.signature_digest) == 64 for r in by_flower)
    gradients = [r for r in provisions(air, recipient=shop.settings.node_id) if r.carried_by == "flower_message"]
    assert len(gradients) >= 2
    assert all(r.individuals > 0 for r in gradients)


def test_the_report_selects_one_members_provisions(brands: dict[str, Node]) -> None:
    air = brands["airline"]
    out = f"{air.settings.node_id}:41"
    air.consent.change(out, ["joint_modeling"], ConsentAction.WITHDRAW)
    align(brands)
    mine = provisions(air, subject=air.consent.member_pseudonym(f"{air.settings.node_id}:40"))
    assert mine
    assert all(r.individuals >= 1 for r in mine)
    assert provisions(air, subject=air.consent.member_pseudonym(out)) == []  # nothing of theirs left


def test_the_cli_report_is_csv_or_json_by_recipient_and_time(brands: dict[str, Node], tmp_path: Path) -> None:
    _air, shop = brands["airline"], brands["shop"]
    align(brands)
    base = ["provisions", "report", "--data-dir", str(tmp_path / "airline"), "--recipient", shop.settings.node_id]
    as_csv = CliRunner().invoke(app, [*base, "--format", "csv"])
    assert as_csv.exit_code == 0, as_csv.output
    table = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert table
    assert {r["recipient"] for r in table} == {shop.settings.node_id}
    assert {"at", "purpose", "legal_basis", "pi_categories", "individuals", "signature_digest"} <= set(table[0])
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    as_json = CliRunner().invoke(app, [*base, "--format", "json", "--from", later])
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout) == []


def test_a_report_with_a_time_without_a_zone_is_refused_plainly(brands: dict[str, Node], tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["provisions", "report", "--data-dir", str(tmp_path / "airline"), "--from", "2026-01-01T00:00"]
    )
    assert result.exit_code != 0
    assert "time zone" in result.output
    assert "Traceback" not in result.output


def test_a_bundle_of_the_provisions_verifies_offline_and_holds_only_them(brands: dict[str, Node]) -> None:
    air, shop = brands["airline"], brands["shop"]
    align(brands)
    flt = AuditFilter(action=PROVISION_FILTER, recipient=shop.settings.node_id)
    buf = io.BytesIO()
    manifest = air.audit.export(flt, buf)
    buf.seek(0)
    verified = verify_bundle(buf, air.signer.verifier())
    assert verified.count == manifest.count == len(provisions(air, recipient=shop.settings.node_id))


def test_records_of_provision_outlive_a_retention_purge_three_years_on(brands: dict[str, Node]) -> None:
    air = brands["airline"]
    align(brands)
    before = provisions(air)
    air.retention.purge(datetime.now(UTC) + timedelta(days=3 * 366))
    assert provisions(air) == before


def test_without_a_joint_declaration_the_recipient_is_an_independent_handler(brands: dict[str, Node]) -> None:
    air = brands["airline"]
    path = air.registry.path
    text = path.read_text()
    path.write_text(text[: text.index("[[joint]]")])
    air.registry.__dict__.pop("registry", None)  # read the file again
    assert air.registry.role_of(brands["shop"].settings.node_id, "joint_modeling") == "independent"


def test_a_transfer_about_thousands_of_members_is_one_row_with_its_total(brands: dict[str, Node]) -> None:
    air, shop = brands["airline"], brands["shop"]
    many = [f"{i:032x}" for i in range(2500)]  # recorded as three events of at most 1,000 subjects
    air.outbound.record_provision(
        shop.settings.node_id, "joint_modeling", many, ["derived.scores"], carried=("flower_message", "d" * 64)
    )
    [row] = [r for r in provisions(air) if r.signature_digest == "d" * 64]
    assert row.individuals == 2500
    [about_one] = provisions(air, subject=many[2200])  # named in the third event only
    assert about_one.individuals == 2500


def test_a_call_that_never_connected_is_not_reported_as_a_provision(brands: dict[str, Node]) -> None:
    air, shop = brands["airline"], brands["shop"]
    for node, other in ((air, shop), (shop, air)):
        node.consent.change(
            f"{node.settings.node_id}:40", [f"points_exchange:{other.settings.node_id}"], ConsentAction.GRANT
        )
    air.outbound.close()  # a real client: nothing listens on the shop's configured port
    code = shop.linking.link_code(f"{shop.settings.node_id}:40", air.settings.node_id)
    with pytest.raises(Refused):
        air.linking.link_with(f"{air.settings.node_id}:40", shop.settings.node_id, code)
    attempted = air.audit.select(AuditFilter(action="pi.provide", purpose="points_exchange"))
    assert [e.outcome for _, e in attempted] == ["ok", "error"]  # recorded before sending, then undone
    assert [r for r in provisions(air) if r.purpose == "points_exchange"] == []


def test_a_cancel_is_recorded_as_a_provision_about_the_member_it_refunds(brands: dict[str, Node]) -> None:
    air, shop = brands["airline"], brands["shop"]
    who = air.consent.member_pseudonym(f"{air.settings.node_id}:40")
    cancel = {"items": [{"kind": "cancel", "exchange_id": "c" * 32}]}
    response = air.outbound.post(
        shop.settings.node_id,
        "/v1/peer/exchanges/batch",
        json=cancel,
        fields=BATCH_FIELDS,
        payload_fields={"kind", "exchange_id"},
        unwinding=("points_exchange", [who, who]),
        idempotent=True,
    )
    assert response.status_code == 200
    [row] = provisions(air, subject=who)
    assert (row.purpose, row.pi_categories, row.individuals) == ("points_exchange", "loyalty.transactions", 1)
    assert row.signature_digest == signature_digest(response.request.headers["signature"])
