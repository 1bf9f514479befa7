"""Every endpoint with every role: nobody reaches what they must not."""

from __future__ import annotations

from pathlib import Path

import pytest
from compliance_fixtures import PIA, notice_data
from fastapi.testclient import TestClient

from compliance.notices import parse_notice
from compliance.pia import Assessment
from node.api.app import create_app
from node.core.auth import Role
from node.core.datadir import init_node
from node.runtime import Node

PUBLIC, OPERATOR, COMPLIANCE, MEMBER = "public", "operator", "compliance", "member"
STAFF = {OPERATOR, COMPLIANCE}
EVERYONE = {PUBLIC, OPERATOR, COMPLIANCE, MEMBER}

# (method, path, json body, who may call it)
ENDPOINTS = [
    ("GET", "/health", None, EVERYONE),
    ("GET", "/v1/logs", None, EVERYONE),
    ("GET", "/v1/logs/audit/checkpoint", None, EVERYONE),
    ("GET", "/v1/logs/audit/consistency?first=1&second=1", None, EVERYONE),
    ("GET", "/v1/logs/audit/entries/0", None, STAFF),
    ("GET", "/v1/notices", None, EVERYONE),
    ("GET", "/v1/notices/1", None, EVERYONE),
    ("POST", "/v1/notices", notice_data(version=2), {COMPLIANCE}),
    ("POST", "/v1/members", {"member_ref": "NEW-1"}, {OPERATOR}),
    ("POST", "/v1/members/M-1/token", None, {OPERATOR}),
    ("GET", "/v1/members/M-1/gate/loyalty.core", None, {OPERATOR}),
    ("POST", "/v1/members/M-1/prompts/marketing", None, {OPERATOR}),
    ("GET", "/v1/me/consents", None, {MEMBER}),
    ("POST", "/v1/me/consents", {"action": "grant", "purposes": ["marketing"]}, {MEMBER}),
    ("GET", "/v1/me/receipts", None, {MEMBER}),
    ("GET", "/v1/me/data", None, {MEMBER}),
    ("POST", "/v1/me/corrections", {"birth_date": "1990-01-02"}, {MEMBER}),
    ("GET", "/v1/me/requests", None, {MEMBER}),
    ("POST", "/v1/me/erasure", None, {MEMBER}),
    ("GET", "/v1/audit/bundle?action=consent.", None, {COMPLIANCE}),
    ("GET", "/v1/pia", None, STAFF),
    ("POST", "/v1/pia", {"assessment": PIA}, STAFF),
    ("POST", "/v1/pia/pia-ok/approval", None, {COMPLIANCE}),
    ("GET", "/v1/pia/report", None, {COMPLIANCE}),
    ("GET", "/v1/features", None, STAFF),
    ("GET", "/v1/requests?overdue=true", None, {COMPLIANCE}),
    ("PUT", "/v1/features/personalization", {"enabled": False}, {OPERATOR}),
]
# not walked here: the witness endpoint authenticates by the checkpoint's signature (tests/test_api.py)
SIGNATURE_AUTHENTICATED = {("POST", "/v1/witness/add-checkpoint")}


@pytest.fixture
def world(tmp_path: Path):  # type: ignore[no-untyped-def]
    init_node(tmp_path / "n", "n.example")
    node = Node.open(tmp_path / "n")
    node.consent.publish_notice(parse_notice(notice_data()))
    node.consent.register_member("M-1")
    node.pia.submit(Assessment.model_validate(PIA), "ann", "pia-ok")
    headers = {
        PUBLIC: {},
        OPERATOR: {"Authorization": f"Bearer {node.staff_keys.issue('olga', Role.OPERATOR)}"},
        COMPLIANCE: {"Authorization": f"Bearer {node.staff_keys.issue('chen', Role.COMPLIANCE)}"},
    }
    client = TestClient(create_app(node), raise_server_exceptions=False)
    token = client.post("/v1/members/M-1/token", headers=headers[OPERATOR]).json()["token"]
    headers[MEMBER] = {"Authorization": f"Bearer {token}"}
    yield client, headers
    node.dispose()


@pytest.mark.parametrize(("method", "path", "body", "allowed"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS])
@pytest.mark.parametrize("role", sorted(EVERYONE))
def test_each_role_reaches_exactly_its_endpoints(world, method, path, body, allowed, role) -> None:  # type: ignore[no-untyped-def]
    client, headers = world
    r = client.request(method, path, json=body, headers=headers[role])
    if role in allowed:
        assert r.status_code < 400, (role, path, r.status_code, r.text)
    else:
        assert r.status_code == (401 if role == PUBLIC else 403), (role, path, r.status_code, r.text)
        assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("credential", ["Bearer nonsense", "Bearer ank_00_x", "Basic abc", "Bearer a.b", "Bearer "])
def test_bad_credentials_are_401(world, credential: str) -> None:  # type: ignore[no-untyped-def]
    client, _ = world
    r = client.get("/v1/me/consents", headers={"Authorization": credential})
    assert r.status_code == 401


def test_a_member_token_from_another_node_is_refused(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client, _ = world
    init_node(tmp_path / "other", "n.example")  # same name, different key
    other = Node.open(tmp_path / "other")
    from node.core.auth import issue_member_token

    forged = issue_member_token(other.signer, "M-1")
    assert client.get("/v1/me/consents", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    other.dispose()


def test_an_expired_member_token_is_refused(world) -> None:  # type: ignore[no-untyped-def]
    client, _ = world
    node = client.app.state.node
    from node.core.auth import issue_member_token

    old = issue_member_token(node.signer, "M-1", ttl=60, now=1_000_000)
    assert client.get("/v1/me/consents", headers={"Authorization": f"Bearer {old}"}).status_code == 401


def test_a_revoked_staff_key_stops_working(world) -> None:  # type: ignore[no-untyped-def]
    client, headers = world
    node = client.app.state.node
    key = headers[OPERATOR]["Authorization"].split()[1]
    assert node.staff_keys.revoke(key.split("_")[1])
    assert client.post("/v1/members", json={"member_ref": "X"}, headers=headers[OPERATOR]).status_code == 401


def test_the_walk_covers_every_route_of_the_app(world) -> None:  # type: ignore[no-untyped-def]
    client, _ = world
    walked = {(m, p.split("?")[0]) for m, p, _, _ in ENDPOINTS} | SIGNATURE_AUTHENTICATED
    templates = {
        "/v1/logs/{name}/checkpoint": "/v1/logs/audit/checkpoint",
        "/v1/logs/{name}/consistency": "/v1/logs/audit/consistency",
        "/v1/logs/{name}/entries/{index}": "/v1/logs/audit/entries/0",
        "/v1/notices/{version}": "/v1/notices/1",
        "/v1/members/{member_ref}/token": "/v1/members/M-1/token",
    }
    for route in client.app.routes:
        path = getattr(route, "path", "")
        if path.startswith(("/docs", "/redoc", "/openapi")):
            continue
        for method in getattr(route, "methods", set()) - {"HEAD", "OPTIONS"}:
            assert (method, templates.get(path, path)) in walked, f"{method} {path} is not in the role walk"
