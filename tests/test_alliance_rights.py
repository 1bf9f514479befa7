"""Issue 20's acceptance, end to end with three nodes: a member linked at all three withdraws joint modeling
at one; within one recovery pass every node has recorded it, the next PSI and vertical run exclude the
member, the provision report at each node lists every transfer about the member, and the audit bundles of
all three verify offline."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from compliance.audit import AuditFilter
from compliance.audit_bundle import verify_bundle
from compliance.consent import ConsentAction
from compliance.provisions import PROVISION_FILTER, Provision, report
from federation.vertical_server import VerticalSettings
from node.demo.vertical import shared_brands
from node.learning.rows import ChurnWindow
from node.learning.vertical_run import vertical_nodes
from node.runtime import Node

TODAY = datetime.now(UTC).date()
WINDOW = ChurnWindow(TODAY - timedelta(days=180), TODAY)
PERSON = 40  # a member of all three brands


@pytest.fixture(autouse=True)
def _quiet_flower() -> None:
    logging.getLogger("flwr").setLevel(logging.WARNING)


@pytest.fixture
def trio(tmp_path: Path) -> Iterator[dict[str, Node]]:
    nodes = shared_brands(tmp_path, ("airline", "shop", "coffee"), 60, 30)
    for node in nodes.values():
        node.alignment.minimum = 20  # a small alliance: runs of 60 shared members are allowed
    yield nodes
    for node in nodes.values():
        node.dispose()


def ref(node: Node) -> str:
    return f"{node.settings.node_id}:{PERSON}"


def member(node: Node) -> str:
    return node.consent.member_pseudonym(ref(node))


def about_member(node: Node, since: datetime | None = None) -> list[Provision]:
    flt = AuditFilter(action=PROVISION_FILTER, subject=member(node), from_ts=since)
    return report(node.audit.select(flt))


def vertical_run(trio: dict[str, Node], name: str) -> None:
    holder, partners = trio["shop"], [trio["airline"], trio["coffee"]]
    vertical_nodes(holder, partners, name, WINDOW, VerticalSettings(run=name, rounds=1, epochs=2), 20)


def test_a_withdrawal_at_one_brand_reaches_all_three_and_every_record_shows_it(trio: dict[str, Node]) -> None:
    air, shop, coffee = trio["airline"], trio["shop"], trio["coffee"]
    for a, b in ((air, shop), (air, coffee), (shop, coffee)):  # the member links their accounts, by code
        code = b.linking.link_code(ref(b), a.settings.node_id)
        a.linking.link_with(ref(a), b.settings.node_id, code)
    vertical_run(trio, "before")  # the member is in it: PSI points, gradients and scores about them leave

    withdrawn_at = datetime.now(UTC)
    air.consent.change(ref(air), ["joint_modeling"], ConsentAction.WITHDRAW)
    air.exchange_recovery.recover()  # one recovery pass at the brand where the member withdrew

    for node in trio.values():  # every node has recorded it
        assert not node.consent.decisions(ref(node))["joint_modeling"].allowed
    assert all(s.state.value == "completed" for s in air.joint.store.sent(member(air)))

    run = f"{shop.settings.node_id}/after"  # the next PSI leaves the member out, with every partner
    for partner in (air, coffee):
        aligned = shop.alignment.align(partner.settings.node_id, f"{run}-{partner.settings.node_id}")
        assert member(shop) not in aligned.ids.values()
    vertical_run(trio, "after")  # and so does the next vertical run: nothing about them leaves any node
    for node in trio.values():
        after = [p for p in about_member(node, withdrawn_at) if p.purpose != "rights.joint"]
        assert after == [], f"{node.settings.node_id} sent data about the member after the withdrawal"

    # the provision report at each node lists every transfer about the member: what it sent whom, and why
    def sent(node: Node) -> set[tuple[str, str, str]]:
        return {(p.recipient.split(".")[0], p.purpose, p.carried_by) for p in about_member(node)}

    assert sent(air) == {
        ("shop", "points_exchange", "peer_call"),  # its link-code claims
        ("coffee", "points_exchange", "peer_call"),
        ("shop", "joint_modeling", "answer"),  # its blinded points, answering the shop's PSI
        ("shop", "joint_modeling", "flower_message"),  # its released scores
        ("shop", "rights.joint", "peer_call"),  # the withdrawal notices
        ("coffee", "rights.joint", "peer_call"),
    }
    gradients = {("airline", "joint_modeling", "flower_message"), ("coffee", "joint_modeling", "flower_message")}
    assert sent(shop) - gradients == {  # gradients too, if the member fell in the training split (secret)
        ("coffee", "points_exchange", "peer_call"),
        ("airline", "joint_modeling", "peer_call"),  # its blinded points, starting each PSI
        ("coffee", "joint_modeling", "peer_call"),
    }
    assert sent(shop) & gradients in (set(), gradients)
    assert sent(coffee) == {("shop", "joint_modeling", "answer"), ("shop", "joint_modeling", "flower_message")}
    for node in trio.values():
        assert all(len(p.signature_digest) == 64 and p.legal_basis and p.pi_categories for p in about_member(node))

    # the audit bundles of all three verify offline: the whole trail, and the member's provisions
    for node in trio.values():
        for flt in (AuditFilter(), AuditFilter(action=PROVISION_FILTER, subject=member(node))):
            buf = io.BytesIO()
            manifest = node.audit.export(flt, buf)
            buf.seek(0)
            assert verify_bundle(buf, node.signer.verifier()).count == manifest.count > 0
