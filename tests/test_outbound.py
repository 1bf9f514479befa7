"""The one egress path: region, consent, assessment and mechanism checks on every outbound call."""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import httpx
import pytest
from compliance_fixtures import BASE_NOTICE, notice_data

from compliance.audit import AuditEvent
from compliance.consent import ConsentAction
from compliance.egress import NON_PI, EgressReason, Mechanism
from compliance.notices import parse_notice
from compliance.pia import Assessment, Feature
from ledger.note import Signer
from node.core.datadir import add_peer, init_node
from node.core.settings import VKEY_FILE, Peer
from node.peers.outbound import EgressRefused
from node.runtime import Node

ROOT = Path(__file__).parents[1]
EXCHANGE = {"member": "identity.pseudonym", "points": "loyalty.transactions", "rate": NON_PI}
DAY = date(2026, 11, 22)
PIA = {
    "title": "Exchange and transfers abroad",
    "features": ["points_exchange", "cross_border"],
    "purposes": ["points_exchange:", "cross_border:"],
    "legitimacy": "Separate consent per recipient and per destination country.",
    "necessity": "Only a pseudonym and the points moved are sent.",
    "impact": "Cross-brand linkage if records were combined.",
    "likelihood": "low",
    "risk_level": "medium",
    "measures": ["Pairwise pseudonyms, consent gate, audited transfers."],
}


def _notice() -> dict:
    purposes = dict(BASE_NOTICE["purposes"])
    purposes["cross_border:"] = purposes["points_exchange:"] | {"description": "Send your exchange abroad."}
    return notice_data(purposes=purposes)


def _peer(node_id: str, region: str) -> Peer:
    vkey = Signer.generate(node_id).verifier().to_vkey()
    return Peer(node_id=node_id, vkey=vkey, url=f"http://127.0.0.1:9/{node_id}", region=region)


@pytest.fixture
def node(make_node: Callable[..., Node]) -> Node:
    """A node in CN that may send to CN and SG, with peers in CN, SG and the US, the notice and members M-0..M-2."""
    peers = [_peer("b.example", "CN"), _peer("sg.example", "SG"), _peer("us.example", "US")]
    n = make_node("a.example", allowed_regions=["CN", "SG"], peers=peers)
    n.consent.publish_notice(parse_notice(_notice()))
    n.consent.register_members([(f"M-{i}", None, None) for i in range(3)])
    return n


def _on(node: Node, *features: Feature) -> None:
    rec = node.pia.submit(Assessment.model_validate(PIA | {"features": [f.value for f in features]}), "ann")
    node.pia.approve(rec.pia_id, "bo")
    for f in features:
        node.pia.enable(f, rec.pia_id, "olga")


def _grant(node: Node, member: str, *purposes: str) -> None:
    node.consent.change(member, list(purposes), ConsentAction.GRANT)


def _last(node: Node) -> AuditEvent:
    log = node.store.log("audit")
    return AuditEvent.from_bytes(log.entry(log.size - 1).data)


def _send(node: Node, peer: str, members: list[str], fields: set[str] | None = None):  # type: ignore[no-untyped-def]
    return node.outbound.authorize(
        peer, EXCHANGE, fields or {"member", "points"}, purpose="points_exchange", members=members, today=DAY
    )


def test_a_call_to_an_unregistered_destination_is_refused_and_audited(node: Node) -> None:
    with pytest.raises(EgressRefused) as info:
        node.outbound.authorize("evil.example", {"x": NON_PI}, {"x"})
    assert info.value.decision.reason is EgressReason.UNKNOWN_DESTINATION
    assert _last(node).reason_code == "destination_not_in_registry"


def test_a_payload_field_nobody_declared_is_refused(node: Node) -> None:
    with pytest.raises(EgressRefused) as info:
        node.outbound.authorize("b.example", {"x": NON_PI}, {"x", "phone"})
    assert info.value.decision.reason is EgressReason.UNDECLARED_FIELD


def test_hashes_without_personal_information_may_go_anywhere_registered(node: Node) -> None:
    permit = node.outbound.authorize("us.example", {"checkpoint": NON_PI}, {"checkpoint"})
    assert permit.decision.reason is EgressReason.NO_PI
    assert permit.url.endswith("/us.example")


def test_personal_information_without_the_recipients_consent_is_refused(node: Node) -> None:
    _on(node, Feature.POINTS_EXCHANGE)
    _grant(node, "M-0", "points_exchange:c.example")  # another brand's consent does not count
    with pytest.raises(EgressRefused) as info:
        _send(node, "b.example", ["M-0"])
    assert info.value.decision.reason is EgressReason.NO_PURPOSE_CONSENT
    assert _last(node).action == "pi.provide.denied"


def test_personal_information_waits_for_the_exchange_feature_and_its_assessment(node: Node) -> None:
    _grant(node, "M-0", "points_exchange:b.example")
    with pytest.raises(EgressRefused):
        _send(node, "b.example", ["M-0"])
    _on(node, Feature.POINTS_EXCHANGE)
    assert _send(node, "b.example", ["M-0"]).decision.reason is EgressReason.DOMESTIC_CONSENTED


def test_a_domestic_provision_is_audited_with_subject_recipient_and_categories(node: Node) -> None:
    _on(node, Feature.POINTS_EXCHANGE)
    _grant(node, "M-0", "points_exchange:b.example")
    _send(node, "b.example", ["M-0"])
    event = _last(node)
    assert event.action == "pi.provide"
    assert event.subject_pseudo_ids == (node.keyring.pseudonym("M-0", create=False),)
    assert event.recipient is not None
    assert event.recipient.id == "b.example"
    assert event.pi_categories == ("identity.pseudonym", "loyalty.transactions")


def test_a_category_the_purpose_does_not_declare_is_refused(node: Node) -> None:
    _on(node, Feature.POINTS_EXCHANGE)
    _grant(node, "M-0", "points_exchange:b.example")
    fields = EXCHANGE | {"card": "financial.account"}
    with pytest.raises(EgressRefused) as info:
        node.outbound.authorize(
            "b.example", fields, {"member", "card"}, purpose="points_exchange", members=["M-0"], today=DAY
        )
    assert info.value.decision.reason is EgressReason.CATEGORY_OUTSIDE_PURPOSE


def test_personal_information_to_a_region_outside_policy_is_refused(node: Node) -> None:
    _on(node, Feature.POINTS_EXCHANGE, Feature.CROSS_BORDER)
    _grant(node, "M-0", "points_exchange:us.example", "cross_border:US")
    with pytest.raises(EgressRefused) as info:
        _send(node, "us.example", ["M-0"])
    assert info.value.decision.reason is EgressReason.REGION_NOT_ALLOWED
    assert _last(node).action == "xborder.block"


def test_abroad_needs_the_separate_cross_border_consent(node: Node) -> None:
    _on(node, Feature.POINTS_EXCHANGE, Feature.CROSS_BORDER)
    _grant(node, "M-0", "points_exchange:sg.example")
    with pytest.raises(EgressRefused) as info:
        _send(node, "sg.example", ["M-0"])
    assert info.value.decision.reason is EgressReason.NO_CROSS_BORDER_CONSENT
    _grant(node, "M-0", "cross_border:SG")
    assert _send(node, "sg.example", ["M-0"]).decision.reason is EgressReason.CROSS_BORDER_OK
    assert _last(node).action == "xborder.transfer"


def test_abroad_needs_the_cross_border_feature_under_an_assessment(node: Node) -> None:
    _on(node, Feature.POINTS_EXCHANGE)
    _grant(node, "M-0", "points_exchange:sg.example", "cross_border:SG")
    with pytest.raises(EgressRefused) as info:
        _send(node, "sg.example", ["M-0"])
    assert info.value.decision.reason is EgressReason.NO_CROSS_BORDER_CONSENT


def test_individuals_sent_abroad_are_counted_once_per_year(node: Node) -> None:
    _on(node, Feature.POINTS_EXCHANGE, Feature.CROSS_BORDER)
    for m in ("M-0", "M-1"):
        _grant(node, m, "points_exchange:sg.example", "cross_border:SG")
    _send(node, "sg.example", ["M-0"])
    _send(node, "sg.example", ["M-0", "M-1"])
    _send(node, "sg.example", ["M-1"])
    assert node.xborder.counts(DAY.year) == (2, 0)


def test_the_100000th_individual_abroad_needs_a_standard_contract_on_record(node: Node) -> None:
    _on(node, Feature.POINTS_EXCHANGE, Feature.CROSS_BORDER)
    for m in ("M-0", "M-1"):
        _grant(node, m, "points_exchange:sg.example", "cross_border:SG")
    node.xborder.add({f"{i:032x}" for i in range(99_998)}, False, DAY)
    _send(node, "sg.example", ["M-0"])  # the 99,999th: still below the threshold
    with pytest.raises(EgressRefused) as info:
        _send(node, "sg.example", ["M-1"])  # would be the 100,000th
    assert info.value.decision.reason is EgressReason.NO_MECHANISM
    assert _last(node).details["needed_mechanism"] == "standard_contract"
    _send(node, "sg.example", ["M-0"])  # already counted: no new individual, no new mechanism
    node.mechanisms.record("SG", Mechanism.STANDARD_CONTRACT, "SCC-2026-001", DAY, date(2027, 12, 31), "chen")
    assert _send(node, "sg.example", ["M-1"]).mechanism == (Mechanism.STANDARD_CONTRACT, "SCC-2026-001")
    assert node.xborder.counts(DAY.year) == (100_000, 0)


def test_an_expired_mechanism_does_not_count(node: Node) -> None:
    node.mechanisms.record("SG", Mechanism.SECURITY_ASSESSMENT, "CAC-1", date(2025, 1, 1), date(2025, 12, 31), "c")
    assert node.mechanisms.in_force("SG", DAY) is None
    assert node.mechanisms.in_force("SG", date(2025, 6, 1)) == (Mechanism.SECURITY_ASSESSMENT, "CAC-1")


# --- structure: nothing else of ours talks to the network -------------------------------------

NETWORK_MODULES = {"httpx", "requests", "urllib.request", "http.client", "socket", "aiohttp", "urllib3"}


def test_only_the_egress_module_imports_an_http_client() -> None:
    offenders = []
    for package in ("node", "compliance", "ledger"):
        for path in (ROOT / package).rglob("*.py"):
            for n in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in n.names] if isinstance(n, ast.Import) else []
                if isinstance(n, ast.ImportFrom) and n.module:
                    names = [n.module]
                if any(name.split(".")[0] in NETWORK_MODULES or name in NETWORK_MODULES for name in names):
                    offenders.append(str(path.relative_to(ROOT)))
    # witnessing only catches httpx's error type; its calls go through node.outbound.
    # local_servers polls the /health of child processes it started itself, and demo_client plays
    # the members' apps against the demo's own servers, and demo --serve asks the servers it started for
    # a privacy link: all on loopback only. flower_deploy only
    # probes the port of the SuperLink it started itself on 127.0.0.1 (Flower's own traffic carries
    # weights and metrics, never rows, between processes it starts).
    # `purchases import` posts a till's CSV to the operator's own node (its API, with the operator's key).
    # `serve` binds a socket to the port it is about to listen on, only to say clearly when it is taken.
    # inprocess is outbound's transport to nodes' apps in this process: no network at all.
    assert sorted(set(offenders)) == [
        "node/cli/exchange.py",
        "node/cli/main.py",
        "node/core/processes.py",
        "node/demo/client.py",
        "node/demo/serving.py",
        "node/learning/deploy.py",
        "node/peers/inprocess.py",
        "node/peers/outbound.py",
        "node/peers/witnessing.py",
    ]


def test_local_servers_only_ever_talk_to_loopback() -> None:
    source = (ROOT / "node" / "core" / "processes.py").read_text()
    assert "host" not in source.replace('"--host", "127.0.0.1"', "")
    assert source.count("127.0.0.1") >= 3
    client = (ROOT / "node" / "demo" / "client.py").read_text()
    assert 'base_url=f"{LOOPBACK}:{port}"' in client
    assert 'LOOPBACK = "http://127.0.0.1"' in client


def test_witnessing_calls_go_through_the_egress_function() -> None:
    source = (ROOT / "node" / "peers" / "witnessing.py").read_text()
    for call in ("httpx.post", "httpx.get", "httpx.Client", "httpx.request"):
        assert call not in source
    assert "self.outbound.post(" in source


# --- end to end: a witness request over real HTTP passes egress ---------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_witness_request_over_http_passes_egress_and_is_cosigned(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from node.cli.main import app

    a, b = tmp_path / "a", tmp_path / "b"
    init_node(a, "a.example")
    init_node(b, "b.example")
    port = _free_port()
    add_peer(a, Peer(node_id="b.example", vkey=(b / VKEY_FILE).read_text(), url=f"http://127.0.0.1:{port}"))
    add_peer(b, Peer(node_id="a.example", vkey=(a / VKEY_FILE).read_text()))
    cmd = [sys.executable, "-m", "node", "serve", "--data-dir", str(b), "--port", str(port), "--no-jobs"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        r = CliRunner().invoke(app, ["witness", "request", "--log", "audit", "--data-dir", str(a)])
        assert r.exit_code == 0, r.output
        assert "cosigned" in r.output
    finally:
        proc.terminate()
        proc.wait(15)


class _DeadOnce:
    """A transport whose first request fails as on a keep-alive connection the peer closed."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if len(self.requests) == 1:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        return httpx.Response(200, json={"ok": True})


def test_an_idempotent_call_is_sent_again_freshly_signed_when_the_connection_was_dead(node: Node) -> None:
    transport = _DeadOnce()
    node.outbound._client = httpx.Client(transport=httpx.MockTransport(transport))
    r = node.outbound.post("b.example", "/v1/peer/x", json={"rate": 1}, fields=EXCHANGE, idempotent=True)
    assert r.status_code == 200
    first, second = (req.headers["signature-input"] for req in transport.requests)
    assert first != second  # a new nonce: the peer's replay check would refuse a resent signature


def test_a_call_that_is_not_idempotent_is_never_sent_twice(node: Node) -> None:
    transport = _DeadOnce()
    node.outbound._client = httpx.Client(transport=httpx.MockTransport(transport))
    with pytest.raises(httpx.RemoteProtocolError):
        node.outbound.post("b.example", "/v1/peer/x", json={"rate": 1}, fields=EXCHANGE)
    assert len(transport.requests) == 1
