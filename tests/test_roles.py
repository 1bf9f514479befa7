"""Every endpoint with every role: nobody reaches what they must not."""

from __future__ import annotations

import base64
import contextlib
import json
import re
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_fixtures import Api, serve
from compliance_fixtures import PIA, notice_data
from sqlalchemy import select

from compliance.pia import Assessment
from compliance.store import MemberRow
from node.core.auth import Role, issue_member_token
from node.demo.alliance import BrandSpec, create_alliance
from node.runtime import Node

PUBLIC, OPERATOR, COMPLIANCE, HOST, MEMBER = "public", "operator", "compliance", "host", "member"
STAFF = {OPERATOR, COMPLIANCE}
WATCHERS = STAFF | {HOST}  # an entrusted host watches the node: nothing that holds identifiers or members' data
EVERYONE = {PUBLIC, OPERATOR, COMPLIANCE, HOST, MEMBER}
PARTNER = "shop.alliance.example"  # a brand the one-brand alliance of these tests does not list

# (method, path, json body, who may call it)
ENDPOINTS: list[tuple[str, str, Any, set[str]]] = [
    ("GET", "/health", None, EVERYONE),
    ("GET", "/ready", None, EVERYONE),
    ("GET", "/metrics", None, WATCHERS),
    ("GET", "/v1/logs", None, EVERYONE),
    ("GET", "/v1/logs/audit/checkpoint", None, EVERYONE),
    ("GET", "/v1/logs/audit/consistency?first=1&second=1", None, EVERYONE),
    ("GET", "/v1/logs/audit/entries/0", None, STAFF),
    ("GET", "/v1/notices", None, EVERYONE),
    ("GET", "/v1/notices/1", None, EVERYONE),
    ("POST", "/v1/notices", notice_data(version=2), {COMPLIANCE}),
    ("POST", "/v1/members", {"member_ref": "NEW-1"}, {OPERATOR}),
    ("POST", "/v1/members/M-1/token", None, {OPERATOR}),
    ("POST", "/v1/members/M-1/privacy-link", None, {OPERATOR}),
    ("DELETE", "/v1/members/M-1/tokens", None, {OPERATOR}),
    ("GET", "/v1/members/M-1/gate/loyalty.core", None, {OPERATOR}),
    ("POST", "/v1/members/M-1/prompts/marketing", None, {OPERATOR}),
    ("GET", "/v1/members/M-1/wallet", None, {OPERATOR}),
    ("POST", "/v1/members/M-1/purchases", {"purchase_id": "p-1", "amount_fen": 1000}, {OPERATOR}),
    (
        "POST",
        "/v1/purchases:batch",
        {"purchases": [{"member_ref": "M-1", "purchase_id": "pb-1", "amount_fen": 1000}]},
        {OPERATOR},
    ),
    ("GET", "/v1/members/at-risk", None, {OPERATOR}),
    ("GET", "/v1/me/consents", None, {MEMBER}),
    ("POST", "/v1/me/consents", {"action": "grant", "purposes": ["marketing"]}, {MEMBER}),
    ("GET", "/v1/me/receipts", None, {MEMBER}),
    ("POST", "/v1/me/access-requests", None, {MEMBER}),
    ("GET", "/v1/me/data", None, {MEMBER}),
    ("GET", "/v1/me/access-requests/dsr-none", None, {MEMBER}),
    ("POST", "/v1/me/corrections", {"birth_date": "1990-01-02"}, {MEMBER}),
    ("GET", "/v1/me/requests", None, {MEMBER}),
    ("POST", "/v1/me/erasure", None, {MEMBER}),
    ("GET", "/v1/me/wallet", None, {MEMBER}),
    ("GET", "/v1/me/phone", None, {MEMBER}),
    ("PUT", "/v1/me/phone", {"phone": "13800138000"}, {MEMBER}),
    ("DELETE", "/v1/me/phone", None, {MEMBER}),
    ("GET", "/v1/me/churn-risk", None, {MEMBER}),
    ("POST", "/v1/me/exchange-quotes", {"to": PARTNER, "points": 10}, {MEMBER}),
    ("POST", "/v1/me/exchanges", {"to": PARTNER, "points": 10}, {MEMBER}),
    ("GET", "/v1/me/exchanges/0a", None, {MEMBER}),
    ("POST", "/v1/me/link-codes", {"brand": PARTNER}, {MEMBER}),
    ("POST", "/v1/me/portability/codes", {"from": PARTNER}, {MEMBER}),
    ("POST", "/v1/me/portability", {"to": PARTNER, "code": "AAAA-BBBB-CCCC-DDDD"}, {MEMBER}),
    ("POST", "/v1/me/links", {"brand": PARTNER, "code": "AAAA-BBBB-CCCC-DDDD"}, {MEMBER}),
    ("GET", "/v1/audit/bundle?action=consent.", None, {COMPLIANCE}),
    ("GET", "/v1/pia", None, STAFF),
    ("POST", "/v1/pia", {"assessment": PIA}, STAFF),
    ("POST", "/v1/pia/pia-ok/approval", None, {COMPLIANCE}),
    ("GET", "/v1/pia/report", None, {COMPLIANCE}),
    ("GET", "/v1/features", None, WATCHERS),
    ("GET", "/v1/requests?overdue=true", None, {COMPLIANCE}),
    ("POST", "/v1/me/reviews", {"decision_id": "0" * 32, "statement": "not me"}, {MEMBER}),
    ("GET", "/v1/me/reviews/dsr-none", None, {MEMBER}),
    ("GET", "/v1/reviews?overdue=true", None, {COMPLIANCE}),
    ("POST", "/v1/reviews/dsr-none/outcome", {"outcome": "upheld", "reasons": "checked"}, {COMPLIANCE}),
    ("PUT", "/v1/features/personalization", {"enabled": False}, {OPERATOR}),
]
# What the permitted role gets where this world has nothing to act on: the service's own answer, from past
# the role check (status, reason code). Every other permitted call succeeds.
NOTHING_TO_ACT_ON: dict[tuple[str, str], tuple[int, str | None]] = {
    ("GET", "/v1/members/at-risk"): (409, "feature_off"),
    ("POST", "/v1/me/exchange-quotes"): (404, "unknown_brand"),
    ("POST", "/v1/me/exchanges"): (404, "unknown_brand"),
    ("GET", "/v1/me/exchanges/0a"): (404, None),
    ("GET", "/v1/me/access-requests/dsr-none"): (404, None),
    ("POST", "/v1/me/reviews"): (404, "unknown_decision"),
    ("GET", "/v1/me/reviews/dsr-none"): (404, "unknown_review"),
    ("POST", "/v1/reviews/dsr-none/outcome"): (404, "unknown_review"),
    ("GET", "/v1/me/data"): (410, "moved"),
    ("POST", "/v1/me/link-codes"): (404, "unknown_brand"),
    ("POST", "/v1/me/portability/codes"): (404, "unknown_brand"),
    ("POST", "/v1/me/portability"): (404, "unknown_brand"),
    ("POST", "/v1/me/links"): (404, "unknown_brand"),
}
# no role reaches these: another brand's node calls them, signing each request (RFC 9421)
PEER_ENDPOINTS = [
    ("POST", "/v1/peer/exchanges/credit"),
    ("POST", "/v1/peer/exchanges/cancel"),
    ("POST", "/v1/peer/exchanges/batch"),
    ("POST", "/v1/peer/exchanges/records"),
    ("POST", "/v1/peer/links/claim"),
    ("POST", "/v1/peer/settlement/statement"),
    ("POST", "/v1/peer/alignment/open"),
    ("POST", "/v1/peer/alignment/points"),
    ("POST", "/v1/peer/alignment/theirs"),
    ("POST", "/v1/peer/alignment/close"),
    ("POST", "/v1/peer/joint/notices"),
    ("POST", "/v1/peer/portability"),
]
# not walked here: the witness endpoint authenticates by the checkpoint's signature (tests/test_api.py)
SIGNATURE_AUTHENTICATED = [("POST", "/v1/witness/add-checkpoint")]


def _calls(permitted: bool, reads: bool | None = None) -> list[Any]:
    """Each endpoint with each role that may (or may not) call it; only GETs with ``reads``, none with ``not reads``."""
    return [
        pytest.param(method, path, body, role, id=f"{role}-{method} {path}")
        for method, path, body, allowed in ENDPOINTS
        for role in sorted(allowed if permitted else EVERYONE - allowed)
        if reads is None or (method == "GET") == reads
    ]


def _open_world(base: Path) -> Api:
    """A node alone in its alliance, served with the test notice, staff keys, member M-1 with a token and an
    assessment waiting for approval."""
    create_alliance(base, [BrandSpec("air", "Air", Decimal(1), Decimal(0), 9)])
    node = Node.open(base / "air")
    node.pia.submit(Assessment.model_validate(PIA), "ann", "pia-ok")
    return serve(node, ("M-1",))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The module's shared world: it gets only reads and refused calls, which change nothing another test sees."""
    api = _open_world(tmp_path_factory.mktemp("roles"))
    yield api
    api.node.dispose()


@pytest.fixture
def own_world(tmp_path: Path) -> Iterator[Api]:
    """A world for one test, for a permitted call that changes the node (publishing, erasing, approving …)."""
    api = _open_world(tmp_path)
    yield api
    api.node.dispose()


def _as(world: Api, role: str) -> dict[str, str]:
    return {
        PUBLIC: {},
        OPERATOR: world.operator,
        COMPLIANCE: world.officer,
        HOST: world.host,
        MEMBER: world.members["M-1"],
    }[role]


def _assert_let_through(r: httpx.Response, method: str, path: str) -> None:
    expected = NOTHING_TO_ACT_ON.get((method, path))
    if expected is None:
        assert r.status_code < 400, (method, path, r.status_code, r.text)
    else:
        assert (r.status_code, r.json().get("reason_code")) == expected, (method, path, r.text)


@pytest.mark.parametrize(("method", "path", "body", "role"), _calls(permitted=False))
def test_each_role_is_refused_every_endpoint_not_meant_for_it(
    world: Api, method: str, path: str, body: Any, role: str
) -> None:
    r = world.client.request(method, path, json=body, headers=_as(world, role))
    assert r.status_code == (401 if role == PUBLIC else 403), (role, path, r.status_code, r.text)
    assert r.headers["content-type"] == "application/problem+json"
    assert "reason_code" not in r.json()  # refused by the role check, not by the service behind it


@pytest.mark.parametrize(("method", "path", "body", "role"), _calls(permitted=True, reads=True))
def test_each_role_reads_every_endpoint_meant_for_it(world: Api, method: str, path: str, body: Any, role: str) -> None:
    _assert_let_through(world.client.request(method, path, json=body, headers=_as(world, role)), method, path)


@pytest.mark.parametrize(("method", "path", "body", "role"), _calls(permitted=True, reads=False))
def test_each_role_acts_on_every_endpoint_meant_for_it(
    own_world: Api, method: str, path: str, body: Any, role: str
) -> None:
    r = own_world.client.request(method, path, json=body, headers=_as(own_world, role))
    _assert_let_through(r, method, path)


@pytest.mark.parametrize(("method", "path"), PEER_ENDPOINTS)
@pytest.mark.parametrize("role", sorted(EVERYONE))
def test_no_role_reaches_a_peer_endpoint_without_a_nodes_signature(
    world: Api, method: str, path: str, role: str
) -> None:
    r = world.client.request(method, path, json={}, headers=_as(world, role))
    assert r.status_code == 401, r.text
    assert r.json()["reason_code"] == "unsigned"


@pytest.mark.parametrize("credential", ["Bearer nonsense", "Bearer ank_00_x", "Basic abc", "Bearer a.b", "Bearer "])
def test_bad_credentials_are_401(world: Api, credential: str) -> None:
    r = world.client.get("/v1/me/consents", headers={"Authorization": credential})
    assert r.status_code == 401


def test_a_member_token_from_another_node_is_refused(world: Api, make_node: Callable[..., Node]) -> None:
    other = make_node(world.node.settings.node_id)  # same name, different key
    forged = issue_member_token(other.signer, "M-1")
    assert world.client.get("/v1/me/consents", headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def test_an_expired_member_token_is_refused(world: Api) -> None:
    old = issue_member_token(world.node.signer, "M-1", ttl=60, now=1_000_000)
    assert world.client.get("/v1/me/consents", headers={"Authorization": f"Bearer {old}"}).status_code == 401


def test_a_revoked_staff_key_stops_working(world: Api) -> None:
    key = world.node.staff_keys.issue("otto", Role.OPERATOR)  # a key of its own: the shared operator's stays valid
    headers = {"Authorization": f"Bearer {key}"}
    assert world.client.get("/v1/features", headers=headers).status_code == 200
    assert world.node.staff_keys.revoke(key.split("_")[1])
    assert world.client.get("/v1/features", headers=headers).status_code == 401


#: Every kind of credential that must open nothing: (what it is, how to make it from the shared world).
BAD_CREDENTIALS: dict[str, Callable[[Api], str]] = {
    "garbage": lambda w: "Bearer nonsense",
    "not bearer": lambda w: "Basic b2xnYTpzZWNyZXQ=",
    "tampered member token": lambda w: _tampered(w.members["M-1"]["Authorization"]),
    "tampered staff key": lambda w: _tampered(w.operator["Authorization"]),
    "expired member token": lambda w: "Bearer " + w.node.member_tokens.issue("M-1", ttl=60, now=1_000_000),
    "member token for no account": lambda w: "Bearer " + issue_member_token(w.node.signer, "M-1", 600),
    "member token for an unknown member": lambda w: "Bearer " + issue_member_token(w.node.signer, "NOBODY", 600),
    "revoked staff key": lambda w: _revoked_staff_key(w),
}


def _tampered(authorization: str) -> str:
    """The credential with one character changed in the middle (a signature or a secret no longer matches)."""
    i = len(authorization) // 2 + 3
    return authorization[:i] + ("A" if authorization[i] != "A" else "B") + authorization[i + 1 :]


def _revoked_staff_key(world: Api) -> str:
    key = world.node.staff_keys.issue("gone", Role.COMPLIANCE)
    assert world.node.staff_keys.revoke(key.split("_")[1])
    return f"Bearer {key}"


@pytest.mark.parametrize("kind", sorted(BAD_CREDENTIALS))
@pytest.mark.parametrize(
    ("method", "path", "body"), [(m, p, b) for m, p, b, allowed in ENDPOINTS if PUBLIC not in allowed]
)
def test_no_bad_credential_opens_any_endpoint(world: Api, method: str, path: str, body: Any, kind: str) -> None:
    r = world.client.request(method, path, json=body, headers={"Authorization": BAD_CREDENTIALS[kind](world)})
    # 429 once the same bad credential failed too often (rate_limits): refused before being checked
    assert r.status_code in (401, 429), (kind, method, path, r.status_code, r.text)
    assert "www-authenticate" in r.headers if r.status_code == 401 else "retry-after" in r.headers


def test_a_member_token_from_another_node_is_refused_everywhere(world: Api, make_node: Callable[..., Node]) -> None:
    other = make_node(world.node.settings.node_id)  # same name, different key
    other.consent.register_member("M-1")
    forged = {"Authorization": f"Bearer {other.member_tokens.issue('M-1')}"}
    for method, path, body, allowed in ENDPOINTS:
        if PUBLIC not in allowed:
            r = world.client.request(method, path, json=body, headers=forged)
            assert r.status_code in (401, 429), (method, path, r.status_code)  # 429: it failed too often


def _route(method: str, url: str, routes: set[tuple[str, str]]) -> tuple[str, str] | None:
    """The (method, path template) of the route serving ``url``: a literal segment wins over a parameter."""
    path = url.split("?")[0]
    matching = [
        (m, template)
        for m, template in routes
        if m == method and re.fullmatch("[^/]+".join(map(re.escape, re.split(r"\{[^}]+\}", template))), path)
    ]
    return min(matching, key=lambda route: route[1].count("{"), default=None)


def test_the_walk_covers_every_route_of_the_app(world: Api) -> None:
    paths = world.client.app.openapi()["paths"]  # type: ignore[attr-defined]
    routes = {(method.upper(), path) for path, operations in paths.items() for method in operations}
    calls = [(m, p) for m, p, _, _ in ENDPOINTS] + PEER_ENDPOINTS + SIGNATURE_AUTHENTICATED
    walked = {call: _route(*call, routes) for call in calls}
    assert [call for call, route in walked.items() if route is None] == []  # every call reaches a route
    assert sorted(routes - set(walked.values())) == [], "routes not in the role walk"


def _seed_identifiers(world: Api) -> dict[str, str]:
    """Give the world members with birth dates, a guardian, a phone, consents and points; return every
    identifier, pseudonym and sealed value it now holds, each as it could appear in an answer."""
    op, client = world.operator, world.client
    assert client.post(
        "/v1/members", json={"member_ref": "LEAK-7731", "birth_date": "1990-02-03"}, headers=op
    ).is_success
    world.node.consent.register_member("KID-5521", date(2016, 5, 6), guardian_ref="GUARD-8842")
    assert client.put("/v1/me/phone", json={"phone": "13800138000"}, headers=world.members["M-1"]).is_success
    grant = {"action": "grant", "purposes": ["marketing"]}
    assert client.post("/v1/me/consents", json=grant, headers=world.members["M-1"]).is_success
    purchase = {"purchase_id": "p-leak", "amount_fen": 5000}
    assert client.post("/v1/members/M-1/purchases", json=purchase, headers=op).is_success
    secrets = {f"reference {r}": r for r in ("M-1", "LEAK-7731", "KID-5521", "GUARD-8842")}
    secrets |= {"birth date": "1990-02-03", "child's birth date": "2016-05-06", "phone": "13800138000"}
    secrets |= {
        "phone (E.164)": "+8613800138000",
        "data key": (world.node.settings.data_dir / "data.key").read_text().strip(),
    }
    for ref in ("M-1", "LEAK-7731", "KID-5521"):
        secrets[f"pseudonym of {ref}"] = world.node.keyring.pseudonym(ref, create=False)
    t = MemberRow.__table__
    with world.node.store.engine.connect() as conn:
        rows = conn.execute(select(t.c.ref_sealed, t.c.birth_sealed, t.c.guardian_sealed, t.c.phone_sealed)).all()
    for n, blob in enumerate(bytes(b) for row in rows for b in row if b is not None):
        secrets[f"sealed value {n} (hex)"] = blob.hex()
        secrets[f"sealed value {n} (base64)"] = base64.b64encode(blob).decode()
        secrets[f"sealed value {n} (base64url)"] = base64.urlsafe_b64encode(blob).decode().rstrip("=")
    return secrets


def _readable(r: httpx.Response) -> str:
    """Everything an answer tells: its headers, its text, and what each base64 string in a JSON body decodes to."""
    told = [str(r.headers), r.text]
    try:
        found: list[Any] = [r.json()]
    except ValueError:
        found = []
    while found:
        value = found.pop()
        if isinstance(value, dict):
            found += value.values()
        elif isinstance(value, list):
            found += value
        elif isinstance(value, str):
            with contextlib.suppress(ValueError):  # not base64: its text is in the body already
                told.append(base64.b64decode(value, validate=True).decode(errors="replace"))
    return "\n".join(told)


def test_no_answer_to_a_host_holds_an_identifier_a_pseudonym_or_a_sealed_value(own_world: Api) -> None:
    secrets = _seed_identifiers(own_world)
    store = own_world.node.store
    calls = [(m, p, b) for m, p, b, _ in ENDPOINTS] + [(m, p, {}) for m, p in PEER_ENDPOINTS]
    calls += [  # every entry of every log: audit events name members by pseudonym
        ("GET", f"/v1/logs/{name}/entries/{i}", None) for name in store.log_names() for i in range(store.log(name).size)
    ]
    assert any(
        secrets["pseudonym of M-1"] in store.log("audit").entry(i).data.decode() for i in range(store.log("audit").size)
    )
    for method, path, body in calls:
        r = own_world.client.request(method, path, json=body, headers=own_world.host)
        answer, asked = _readable(r), path + json.dumps(body)  # a problem echoes the path it was asked
        leaked = [what for what, value in secrets.items() if value in answer and value not in asked]
        assert not leaked, (method, path, r.status_code, leaked)
