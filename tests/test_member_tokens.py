"""A member token works for the one account it was issued for: erasure and revocation end it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from api_fixtures import Api, open_api

from compliance.audit import AuditEvent
from node.core.auth import issue_member_token


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    opened = open_api(tmp_path / "n", ("M-1", "M-2"))
    yield opened
    opened.node.dispose()


def _token(api: Api, ref: str) -> dict[str, str]:
    r = api.client.post(f"/v1/members/{ref}/token", headers=api.operator)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_an_old_token_cannot_reach_an_account_registered_again_under_the_same_reference(api: Api) -> None:
    old = api.members["M-1"]
    assert api.client.post("/v1/me/erasure", headers=old).status_code in (200, 201)
    assert api.client.post("/v1/members", json={"member_ref": "M-1"}, headers=api.operator).status_code == 201
    r = api.client.get("/v1/me/wallet", headers=old)
    assert r.status_code == 401, r.text
    assert api.client.get("/v1/me/wallet", headers=_token(api, "M-1")).status_code == 200


def test_revoking_a_members_tokens_ends_every_token_issued_so_far(api: Api) -> None:
    before = _token(api, "M-1")
    r = api.client.delete("/v1/members/M-1/tokens", headers=api.operator)
    assert r.status_code == 200, r.text
    assert r.json() == {"member_ref": "M-1", "generation": 1}
    assert api.client.get("/v1/me/wallet", headers=before).status_code == 401
    assert api.client.get("/v1/me/wallet", headers=api.members["M-1"]).status_code == 401
    assert api.client.get("/v1/me/wallet", headers=_token(api, "M-1")).status_code == 200


def test_revoking_one_members_tokens_leaves_the_others_working(api: Api) -> None:
    assert api.client.delete("/v1/members/M-1/tokens", headers=api.operator).status_code == 200
    assert api.client.get("/v1/me/wallet", headers=api.members["M-2"]).status_code == 200


def test_a_revocation_is_audited_under_the_members_pseudonym(api: Api) -> None:
    api.client.delete("/v1/members/M-1/tokens", headers=api.operator)
    pseudonym = api.node.keyring.pseudonym("M-1", create=False)
    events = [AuditEvent.from_bytes(e.data) for e in api.node.store.log("audit").entries()]
    [revocation] = [e for e in events if e.action == "key.rotate" and pseudonym in e.subject_pseudo_ids]
    assert revocation.actor.type == "staff"


def test_only_operators_revoke_and_only_registered_members(api: Api) -> None:
    assert api.client.delete("/v1/members/M-1/tokens", headers=api.members["M-1"]).status_code == 403
    assert api.client.delete("/v1/members/M-1/tokens", headers=api.officer).status_code == 403
    assert api.client.delete("/v1/members/NOBODY/tokens", headers=api.operator).status_code == 404


def test_a_token_bound_to_no_account_is_refused(api: Api) -> None:
    unbound = issue_member_token(api.node.signer, "M-1", 600)  # signed by this node, but for no account
    r = api.client.get("/v1/me/wallet", headers={"Authorization": f"Bearer {unbound}"})
    assert r.status_code == 401
