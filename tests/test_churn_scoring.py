"""Churn scores respect the personalization switch: without it, nothing of the member is read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from api_fixtures import open_api
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compliance.audit import AuditEvent
from federation.features import FEATURES
from federation.training import initial_weights
from node.core.auth import Role
from node.learning.scoring import NOT_PERSONALISED
from node.learning.store import NodeModelShelf
from node.runtime import Node

TODAY = datetime.now(UTC).date()


@pytest.fixture
def api(tmp_path: Path):  # type: ignore[no-untyped-def]
    a = open_api(tmp_path / "n", ("M-in", "M-out"))
    client, node, tokens, operator = a.client, a.node, a.members, a.operator
    switch_on_personalization(node)
    grant = {"action": "grant", "purposes": ["personalization"]}
    assert client.post("/v1/me/consents", json=grant, headers=tokens["M-in"]).status_code == 200
    for ref in ("M-in", "M-out"):
        member = node.consent.member_pseudonym(ref)
        for i in range(3):
            day = TODAY - timedelta(days=40 * i + 5)
            node.wallets.earn(member, 100 + i, "purchase", day, day + timedelta(days=700), ref=f"p:{ref}:{i}")
    yield client, node, tokens, operator
    node.dispose()


def switch_on_personalization(node: Node) -> None:
    """An approved assessment for personalization and the switch on (PIPL Art. 55)."""
    from compliance.pia import Feature, example_assessment
    from node.core.auth import Caller, current_caller

    assessment = example_assessment().model_copy(
        update={"features": ["personalization"], "purposes": ["personalization"]}
    )
    token = current_caller.set(Caller(Role.COMPLIANCE, "ann"))
    try:
        record = node.pia.submit(assessment, "ann")
        current_caller.set(Caller(Role.COMPLIANCE, "bo"))
        node.pia.approve(record.pia_id, "bo")
        current_caller.set(Caller(Role.OPERATOR, "olga"))
        node.pia.enable(Feature.PERSONALIZATION, record.pia_id, "olga")
    finally:
        current_caller.reset(token)


def with_model(node: Node) -> None:
    weights = initial_weights(len(FEATURES), seed=3)
    weights = {k: v * 3 for k, v in weights.items()}  # sharper, so factors differ visibly
    NodeModelShelf(node.store.engine).store("run-1", 2, weights)


def events(node: Node) -> list[AuditEvent]:
    return [AuditEvent.from_bytes(e.data) for e in node.store.log("audit").entries()]


def test_a_consenting_member_gets_a_risk_band_and_the_main_factors(api) -> None:  # type: ignore[no-untyped-def]
    client, node, tokens, _ = api
    with_model(node)
    r = client.get("/v1/me/churn-risk", headers=tokens["M-in"])
    assert r.status_code == 200
    body = r.json()
    assert body["personalised"] is True
    assert 0.0 <= body["risk"] <= 1.0
    assert body["band"] in {"low", "medium", "high"}
    assert len(body["factors"]) == 3
    assert {f["feature"] for f in body["factors"]} <= set(FEATURES)
    assert body["model"] == {"run": "run-1", "round": 2, "joint_share": 1.0}
    decided = [e for e in events(node) if e.action == "adm.decide"]
    assert decided[-1].subject_pseudo_ids == (node.consent.member_pseudonym("M-in"),)
    assert decided[-1].purpose_code == "personalization"


def test_an_opted_out_member_gets_the_general_answer(api) -> None:  # type: ignore[no-untyped-def]
    client, node, tokens, _ = api
    with_model(node)
    r = client.get("/v1/me/churn-risk", headers=tokens["M-out"])
    assert r.status_code == 200
    assert r.json() == {**NOT_PERSONALISED, "model": None}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(1, 700), st.integers(1, 5000), st.booleans()), max_size=8))
def test_an_opted_out_members_history_changes_nothing_and_is_never_read(api, history) -> None:  # type: ignore[no-untyped-def]
    client, node, tokens, _ = api
    if not NodeModelShelf(node.store.engine).versions():
        with_model(node)
    member = node.consent.member_pseudonym("M-out")
    for days_ago, points, redeem in history:
        day = TODAY - timedelta(days=days_ago)
        entry = node.wallets.earn(member, points, "purchase", day, day + timedelta(days=800))
        if redeem:
            node.wallets.redeem(member, min(points, 10), "reward", TODAY)
        assert entry.points == points
    reads: list[list[str]] = []
    real = node.wallets.movements
    node.wallets.movements = lambda members: reads.append(list(members)) or real(members)  # type: ignore[method-assign]
    before = len(events(node))
    try:
        r = client.get("/v1/me/churn-risk", headers=tokens["M-out"])
    finally:
        del node.wallets.movements
    assert r.status_code == 200
    assert r.json() == {**NOT_PERSONALISED, "model": None}
    assert reads == []  # no journal, so no feature, was read
    new = events(node)[before:]
    assert [e.action for e in new] == ["gate.denied"]  # the refusal is recorded; no read, no decision
    assert new[0].purpose_code == "personalization"


def test_with_the_personalization_switch_off_everyone_gets_the_general_answer(api) -> None:  # type: ignore[no-untyped-def]
    from compliance.pia import Feature

    client, node, tokens, operator = api
    with_model(node)
    node.pia.disable(Feature.PERSONALIZATION, "olga")
    r = client.get("/v1/me/churn-risk", headers=tokens["M-in"])
    assert r.json() == {**NOT_PERSONALISED, "model": None}
    assert client.get("/v1/members/at-risk", headers=operator).status_code == 409


def test_operators_see_only_consenting_members_at_risk(api) -> None:  # type: ignore[no-untyped-def]
    client, node, tokens, operator = api
    with_model(node)
    r = client.get("/v1/members/at-risk", params={"min_risk": 0.0}, headers=operator)
    assert r.status_code == 200
    body = r.json()
    assert body["scored"] == 1
    assert [m["member"] for m in body["members"]] == [node.consent.member_pseudonym("M-in")]
    assert client.get("/v1/members/at-risk", headers=tokens["M-in"]).status_code == 403


def test_without_a_model_scoring_is_a_clear_conflict(api) -> None:  # type: ignore[no-untyped-def]
    client, _, tokens, operator = api
    r = client.get("/v1/me/churn-risk", headers=tokens["M-in"])
    assert r.status_code == 409
    assert "no churn model yet" in r.json()["detail"]
    assert client.get("/v1/members/at-risk", headers=operator).status_code == 409


def test_factors_are_the_effect_of_each_feature_against_an_average_member() -> None:
    from federation.scoring import score_rows

    w = {
        "0.weight": np.zeros((16, 2), np.float32),
        "0.bias": np.zeros(16, np.float32),
        "2.weight": np.zeros((1, 16), np.float32),
        "2.bias": np.zeros(1, np.float32),
    }
    w["0.weight"][0, 0] = 1.0
    w["2.weight"][0, 0] = 2.0  # risk rises with the first feature only
    (s,) = score_rows(w, [[1.5, -3.0]], ["recency_days", "frequency"], top=2)
    assert s.factors[0].feature == "recency_days"
    assert s.factors[0].effect > 0.2
    assert s.factors[1].effect == pytest.approx(0.0)


def test_a_member_scored_by_a_cross_brand_run_sees_that_risk_too(api) -> None:  # type: ignore[no-untyped-def]
    from node.learning.vertical_store import VerticalRunRecord

    client, node, tokens, _ = api
    with_model(node)
    member = node.consent.member_pseudonym("M-in")
    run = f"{node.settings.node_id}/v1"
    record = VerticalRunRecord(run, "label_holder", node.settings.node_id, ["p"], 1, 3.0, 0.7, 0.72, {"p": 0.02},
                               ["p"], datetime.now(UTC))
    node.vertical.record_run(record, {member: 0.8125})
    body = client.get("/v1/me/churn-risk", headers=tokens["M-in"]).json()
    assert body["cross_brand"] == {"run": run, "risk": 0.8125}
    assert client.get("/v1/me/churn-risk", headers=tokens["M-out"]).json()["personalised"] is False  # no consent
