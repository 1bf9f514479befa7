"""The node's HTTP API: health, checkpoints, proofs, witnessing and problem+json errors."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_fixtures import open_api
from fastapi.testclient import TestClient

from ledger import note
from ledger.checkpoint import Checkpoint, open_checkpoint
from ledger.cosignature import verify_cosignatures
from ledger.proof import verify_consistency, verify_inclusion
from ledger.witness import AddCheckpoint
from node.api.app import create_app
from node.core.auth import Role
from node.core.datadir import add_peer, init_node
from node.core.settings import VKEY_FILE, Peer
from node.runtime import Node


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[dict[str, Node]]:
    for name in ("a", "b"):
        init_node(tmp_path / name, f"{name}.example")
    add_peer(tmp_path / "b", Peer(node_id="a.example", vkey=(tmp_path / "a" / VKEY_FILE).read_text().strip()))
    opened = {name: Node.open(tmp_path / name) for name in ("a", "b")}
    yield opened
    for n in opened.values():
        n.dispose()


@pytest.fixture
def client(nodes: dict[str, Node]) -> TestClient:
    log = nodes["a"].store.log("audit")
    log.append([f"event {i}".encode() for i in range(11)])
    key = nodes["a"].staff_keys.issue("ops", Role.OPERATOR)
    return TestClient(create_app(nodes["a"]), raise_server_exceptions=False, headers={"Authorization": f"Bearer {key}"})


@pytest.fixture
def witness_client(nodes: dict[str, Node]) -> TestClient:
    return TestClient(create_app(nodes["b"]), raise_server_exceptions=False)


def _b64s(items: list[str]) -> list[bytes]:
    return [base64.b64decode(x) for x in items]


def test_health_names_the_node(client: TestClient) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "node_id": "a.example", "region": "CN"}


def test_logs_are_listed_with_their_heads(client: TestClient) -> None:
    sizes = {log["name"]: log["size"] for log in client.get("/v1/logs").json()}
    assert sizes == {"audit": 11, "exchange": 0}


def test_checkpoint_is_a_signed_note_that_verifies_with_the_node_vkey(client: TestClient, nodes) -> None:
    r = client.get("/v1/logs/audit/checkpoint")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    cp, _ = open_checkpoint(r.text, nodes["a"].signer.verifier())
    assert (cp.origin, cp.size) == ("a.example/audit", 11)


def test_entry_comes_with_an_inclusion_proof_against_the_checkpoint(client: TestClient, nodes) -> None:
    cp, _ = open_checkpoint(client.get("/v1/logs/audit/checkpoint").text, nodes["a"].signer.verifier())
    body = client.get("/v1/logs/audit/entries/6", params={"tree_size": cp.size}).json()
    assert base64.b64decode(body["data_b64"]) == b"event 6"
    verify_inclusion(6, cp.size, bytes.fromhex(body["leaf_hash"]), _b64s(body["inclusion_proof"]), cp.root_hash)


def test_consistency_proof_links_two_tree_sizes(client: TestClient, nodes) -> None:
    log = nodes["a"].store.log("audit")
    body = client.get("/v1/logs/audit/consistency", params={"first": 4, "second": 11}).json()
    verify_consistency(4, 11, log.root_at(4), log.root_at(11), _b64s(body["proof"]))


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v1/logs/nope/checkpoint", 404),
        ("/v1/logs/audit/entries/11", 404),
        ("/v1/logs/audit/entries/-1", 422),
        ("/v1/logs/audit/entries/abc", 422),
        ("/v1/logs/audit/entries/0?tree_size=99", 400),
        ("/v1/logs/audit/consistency?first=5&second=2", 400),
        ("/v1/logs/audit/consistency?first=0&second=2", 400),
        ("/v1/logs/audit/consistency?first=1&second=99", 400),
        ("/v1/logs/audit/consistency", 422),
        ("/no/such/route", 404),
    ],
)
def test_bad_requests_get_a_problem_json_4xx(client: TestClient, path: str, status: int) -> None:
    r = client.get(path)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["status"] == status
    assert body["title"]
    assert "Traceback" not in r.text


def test_openapi_is_served(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/v1/witness/add-checkpoint" in paths
    assert "/v1/logs/{name}/entries/{index}" in paths


def _add(witness_client: TestClient, body: str):  # type: ignore[no-untyped-def]
    return witness_client.post("/v1/witness/add-checkpoint", content=body.encode())


def test_a_peer_checkpoint_is_cosigned_then_extended(nodes, witness_client: TestClient) -> None:
    a = nodes["a"]
    log = a.store.log("audit")
    log.append([b"one", b"two"])
    first = log.sign_checkpoint(a.signer)
    r = _add(witness_client, AddCheckpoint(0, (), first).render())
    assert r.status_code == 200
    cosigner = nodes["b"].signer.verifier(note.ALG_COSIGNATURE_V1)
    assert verify_cosignatures(first + r.text, cosigner)[0].name == "b.example"
    log.append([b"three"])
    second = log.sign_checkpoint(a.signer)
    proof = tuple(log.consistency_proof(2, 3))
    assert _add(witness_client, AddCheckpoint(2, proof, second).render()).status_code == 200


def test_a_stale_old_size_gets_409_with_the_witness_size(nodes, witness_client: TestClient) -> None:
    a = nodes["a"]
    log = a.store.log("audit")
    log.append([b"one", b"two"])
    signed = log.sign_checkpoint(a.signer)
    assert _add(witness_client, AddCheckpoint(0, (), signed).render()).status_code == 200
    r = _add(witness_client, AddCheckpoint(0, (), signed).render())
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("text/x.tlog.size")
    assert r.text == "2\n"


def test_a_forked_history_is_refused_as_a_split_view(nodes, witness_client: TestClient) -> None:
    a = nodes["a"]
    log = a.store.log("audit")
    log.append([b"one", b"two"])
    assert _add(witness_client, AddCheckpoint(0, (), log.sign_checkpoint(a.signer)).render()).status_code == 200
    fork = Checkpoint("a.example/audit", 3, b"\x07" * 32).sign(a.signer)
    r = _add(witness_client, AddCheckpoint(2, (b"\x01" * 32, b"\x02" * 32), fork).render())
    assert r.status_code == 422
    assert "split view" in r.json()["detail"]
    same_size = Checkpoint("a.example/audit", 2, b"\x07" * 32).sign(a.signer)
    r = _add(witness_client, AddCheckpoint(2, (), same_size).render())
    assert r.status_code == 409
    assert "split view" in r.json()["detail"]


def test_unknown_logs_untrusted_keys_and_garbage_are_refused(nodes, witness_client: TestClient) -> None:
    stranger = note.Signer.generate("z.example")
    unknown = Checkpoint("z.example/audit", 0, b"\x00" * 32).sign(stranger)
    assert _add(witness_client, AddCheckpoint(0, (), unknown).render()).status_code == 404
    impostor = note.Signer.generate("a.example")
    forged = Checkpoint("a.example/audit", 0, b"\x00" * 32).sign(impostor)
    assert _add(witness_client, AddCheckpoint(0, (), forged).render()).status_code == 403
    for garbage in ("", "old x\n\nfoo", "old 1\n\n", "\xff"):
        r = _add(witness_client, garbage)
        assert r.status_code == 400
        assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/me/exchange-quotes", {"to": "b.example", "points": 10}),
        ("/v1/me/exchanges", {"to": "b.example", "points": 10}),
        ("/v1/me/link-codes", {"brand": "b.example"}),
        ("/v1/me/links", {"brand": "b.example", "code": "ABCD-EFGH-IJKL-MNOP"}),
    ],
)
def test_a_node_in_no_alliance_yet_answers_exchange_calls_with_503_not_in_registry(
    tmp_path: Path, path: str, body: dict[str, object]
) -> None:
    api = open_api(tmp_path / "n", ("M-1",))  # no registry.toml: the node has not joined an alliance
    try:
        r = api.client.post(path, json=body, headers=api.members["M-1"])
    finally:
        api.node.dispose()
    assert r.status_code == 503, r.text
    assert r.json()["reason_code"] == "not_in_registry"


# --- what an error tells the client beyond its body: Allow, WWW-Authenticate, the OpenAPI document ---


def test_a_method_the_path_does_not_serve_is_405_with_the_allowed_methods(client: TestClient) -> None:
    r = client.get("/v1/members")
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"
    assert r.headers["content-type"] == "application/problem+json"


def test_a_request_without_credentials_is_challenged_for_a_bearer_token(witness_client: TestClient) -> None:
    r = witness_client.get("/v1/me/consents")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"  # no error code when none was given (RFC 6750 3.1)


def test_a_refused_credential_is_challenged_as_an_invalid_token(witness_client: TestClient) -> None:
    r = witness_client.get("/v1/me/consents", headers={"Authorization": "Bearer nonsense"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith('Bearer error="invalid_token", error_description="')


def test_a_credential_that_is_not_a_bearer_one_is_an_invalid_request(witness_client: TestClient) -> None:
    r = witness_client.get("/v1/me/consents", headers={"Authorization": "Basic YTpi"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith('Bearer error="invalid_request"')


def test_an_unsigned_peer_call_is_challenged_for_a_signature(witness_client: TestClient) -> None:
    r = witness_client.post("/v1/peer/exchanges/records", json={})
    assert (r.status_code, r.json()["reason_code"]) == (401, "unsigned")
    assert r.headers["www-authenticate"].startswith("Signature")
    assert r.headers["accept-signature"].startswith('peer=("@method" "@target-uri" "content-digest")')


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    return client.app.openapi()  # type: ignore[attr-defined]


def _answers(document: dict[str, Any], method: str, path: str) -> dict[str, dict[str, Any]]:
    """An operation's responses by status, shared ones resolved."""
    shared = document["components"]["responses"]
    answers = document["paths"][path][method.lower()]["responses"]
    return {s: shared[a["$ref"].rsplit("/", 1)[1]] if "$ref" in a else a for s, a in answers.items()}


def _operations(document: dict[str, Any]) -> list[tuple[str, str]]:
    return [(method.upper(), path) for path, ops in document["paths"].items() for method in ops]


def test_every_operation_declares_413_and_503_with_retry_after(document: dict[str, Any]) -> None:
    for method, path in _operations(document):
        answers = _answers(document, method, path)
        assert {"413", "503"} <= set(answers), (method, path)
        assert "Retry-After" in answers["503"]["headers"]


def test_every_declared_error_is_a_problem(document: dict[str, Any]) -> None:
    assert document["components"]["schemas"]["Problem"]["required"] == ["type", "title", "status", "detail", "instance"]
    assert "HTTPValidationError" not in document["components"]["schemas"]  # FastAPI's 422 shape is not ours
    for method, path in _operations(document):
        for status, answer in _answers(document, method, path).items():
            if int(status) >= 400:
                assert "application/problem+json" in answer["content"], (method, path, status)


def test_role_protected_operations_declare_a_bearer_401_and_a_403(document: dict[str, Any]) -> None:
    protected = [("POST", "/v1/members"), ("GET", "/v1/me/consents"), ("GET", "/v1/logs/{name}/entries/{index}")]
    for method, path in protected:
        answers = _answers(document, method, path)
        assert "Bearer" in answers["401"]["headers"]["WWW-Authenticate"]["description"]
        assert "403" in answers
    assert "401" not in _answers(document, "GET", "/health")
    assert "401" not in _answers(document, "GET", "/v1/notices")


def test_peer_operations_declare_a_signature_401_with_its_reason_codes(document: dict[str, Any]) -> None:
    answer = _answers(document, "POST", "/v1/peer/exchanges/credit")["401"]
    assert set(answer["headers"]) == {"WWW-Authenticate", "Accept-Signature"}
    assert {"unsigned", "digest_mismatch", "replayed"} <= set(answer["x-reason-codes"])


def test_refusal_statuses_are_declared_with_their_reason_codes(document: dict[str, Any]) -> None:
    answers = _answers(document, "POST", "/v1/me/exchanges")
    assert "insufficient_points" in answers["409"]["x-reason-codes"]
    assert "no_consent" in answers["403"]["x-reason-codes"]
    assert "peer_unreachable" in answers["502"]["x-reason-codes"]
    assert "insufficient_points" in answers["409"]["description"]


def test_a_status_a_route_declares_itself_keeps_its_own_words(document: dict[str, Any]) -> None:
    conflict = _answers(document, "POST", "/v1/witness/add-checkpoint")["409"]
    assert set(conflict["content"]) == {"text/x.tlog.size", "application/problem+json"}  # a size, or a split view
    assert _answers(document, "GET", "/v1/me/churn-risk")["409"]["description"].startswith("no churn model yet")
