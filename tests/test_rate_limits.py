"""Budgets: a member's audited actions and a credential's failed sign-ins are limited (429, Retry-After);
an access request is a POST whose result can be read again without recording anything."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from api_fixtures import Api, open_api

from compliance.rights_service import RequestRefused
from node.api.ratelimits import RateLimiter


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- the bucket ----------------------------------------------------------------------------------------


def test_a_budget_allows_its_burst_then_says_how_long_to_wait() -> None:
    clock = Clock()
    limiter = RateLimiter(3, clock)
    assert [limiter.take("m") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("m") == pytest.approx(20.0)  # 3 a minute: one more in 20 s
    clock.now += 20
    assert limiter.take("m") == 0.0


def test_one_keys_budget_is_not_anothers() -> None:
    limiter = RateLimiter(1, Clock())
    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0
    assert limiter.take("b") == 0.0


def test_looking_at_a_budget_spends_nothing() -> None:
    limiter = RateLimiter(1, Clock())
    assert limiter.wait("a") == 0.0
    assert limiter.wait("a") == 0.0
    assert limiter.take("a") == 0.0


# --- through the API --------------------------------------------------------------------------------------


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    opened = open_api(
        tmp_path / "n",
        ("M-1", "M-2"),
        rate_limits={"member_writes_per_minute": 3, "failed_auth_per_minute": 2},
    )
    yield opened
    opened.node.dispose()


def _grant(api: Api, member: str):  # type: ignore[no-untyped-def]
    body = {"action": "grant", "purposes": ["marketing"]}
    return api.client.post("/v1/me/consents", json=body, headers=api.members[member])


def test_a_member_past_their_budget_of_audited_actions_gets_429_with_retry_after(api: Api) -> None:
    assert [_grant(api, "M-1").status_code for _ in range(3)] == [200, 200, 200]
    r = _grant(api, "M-1")
    assert r.status_code == 429
    assert r.json()["reason_code"] == "rate_limited"
    assert 1 <= int(r.headers["retry-after"]) <= 20
    assert _grant(api, "M-2").status_code == 200  # another member's budget is their own
    assert api.client.get("/v1/me/consents", headers=api.members["M-1"]).status_code == 200  # reads are free


def test_a_credential_that_failed_too_often_must_wait(api: Api) -> None:
    bad = {"Authorization": "Bearer ank_0000_not-a-key"}
    assert [api.client.get("/v1/me/consents", headers=bad).status_code for _ in range(2)] == [401, 401]
    r = api.client.get("/v1/me/consents", headers=bad)
    assert r.status_code == 429
    assert "retry-after" in r.headers
    other = {"Authorization": "Bearer ank_0000_another"}
    assert api.client.get("/v1/me/consents", headers=other).status_code == 401
    assert api.client.get("/v1/me/consents", headers=api.members["M-1"]).status_code == 200


def test_an_access_request_is_a_post_and_its_result_a_get_that_records_nothing(api: Api) -> None:
    r = api.client.post("/v1/me/access-requests", headers=api.members["M-1"])
    assert r.status_code == 201, r.text
    request_id = r.json()["request"]["id"]
    assert r.json()["request"]["state"] == "completed"
    assert r.json()["data"]["request_id"] == request_id
    size = api.node.store.log("audit").size
    again = api.client.get(f"/v1/me/access-requests/{request_id}", headers=api.members["M-1"])
    assert again.status_code == 200
    assert again.json()["data"]["member"] == r.json()["data"]["member"]
    assert api.node.store.log("audit").size == size
    moved = api.client.get("/v1/me/data", headers=api.members["M-1"])  # what notices published before name
    assert (moved.status_code, moved.json()["reason_code"]) == (410, "moved")
    assert api.node.store.log("audit").size == size


def test_another_members_access_result_is_not_found(api: Api) -> None:
    request_id = api.client.post("/v1/me/access-requests", headers=api.members["M-1"]).json()["request"]["id"]
    r = api.client.get(f"/v1/me/access-requests/{request_id}", headers=api.members["M-2"])
    assert r.status_code == 404


def test_an_access_result_older_than_a_day_is_gone(api: Api) -> None:
    req, _ = api.node.rights.request_access("M-1")
    later = datetime.now(UTC) + timedelta(days=1, minutes=1)
    with pytest.raises(RequestRefused) as info:
        api.node.rights.access_result("M-1", req.dsr_id, later)
    assert info.value.reason == "request_expired"
