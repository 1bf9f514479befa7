"""The consent-prompt counter (PIPL-CONSENT-08): no repeated prompts after a refusal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from compliance_fixtures import notice_data
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from compliance.notices import parse_notice
from compliance.prompts import PROMPT_LIMIT, WINDOW, decide
from node.api.app import create_app
from node.core.auth import Role
from node.core.datadir import init_node
from node.runtime import Node

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def test_a_member_may_be_asked_once() -> None:
    assert decide([], T0, already_consented=False).allowed


def test_a_second_prompt_within_the_window_is_refused_with_the_day_it_becomes_possible() -> None:
    answer = decide([T0], T0 + timedelta(days=30), already_consented=False)
    assert (answer.allowed, answer.reason) == (False, "prompt_limit")
    assert answer.next_allowed == T0 + WINDOW


def test_after_the_window_the_member_may_be_asked_again() -> None:
    assert decide([T0], T0 + WINDOW, already_consented=False).allowed


def test_a_member_who_consented_is_not_asked() -> None:
    assert decide([], T0, already_consented=True).reason == "already_consented"


@given(st.lists(st.integers(min_value=0, max_value=720), max_size=30))
def test_following_the_answers_never_exceeds_the_limit(days: list[int]) -> None:
    shown: list[datetime] = []
    for d in sorted(days):
        now = T0 + timedelta(days=d)
        if decide(shown, now, already_consented=False).allowed:
            shown.append(now)
        assert sum(1 for t in shown if now - t < WINDOW) <= PROMPT_LIMIT


@pytest.fixture
def api(tmp_path: Path):  # type: ignore[no-untyped-def]
    init_node(tmp_path / "n", "n.example")
    node = Node.open(tmp_path / "n")
    node.consent.publish_notice(parse_notice(notice_data()))
    node.consent.register_member("M-1")
    client = TestClient(create_app(node), raise_server_exceptions=False)
    ops = {"Authorization": f"Bearer {node.staff_keys.issue('olga', Role.OPERATOR)}"}
    yield client, node, ops
    node.dispose()


def test_the_api_counts_prompts_and_answers_429_after_the_limit(api) -> None:  # type: ignore[no-untyped-def]
    client, _, ops = api
    assert client.post("/v1/members/M-1/prompts/marketing", headers=ops).status_code == 201
    r = client.post("/v1/members/M-1/prompts/marketing", headers=ops)
    assert r.status_code == 429
    assert r.json()["reason_code"] == "prompt_limit"
    assert client.post("/v1/members/M-1/prompts/personalization", headers=ops).status_code == 201


def test_the_api_does_not_prompt_a_member_who_consented(api) -> None:  # type: ignore[no-untyped-def]
    from compliance.consent import ConsentAction

    client, node, ops = api
    node.consent.change("M-1", ["marketing"], ConsentAction.GRANT)
    r = client.post("/v1/members/M-1/prompts/marketing", headers=ops)
    assert r.status_code == 409
    assert r.json()["reason_code"] == "already_consented"


def test_the_api_refuses_unknown_members_and_purposes(api) -> None:  # type: ignore[no-untyped-def]
    client, _, ops = api
    assert client.post("/v1/members/NOPE/prompts/marketing", headers=ops).status_code == 404
    assert client.post("/v1/members/M-1/prompts/astrology", headers=ops).status_code == 422
