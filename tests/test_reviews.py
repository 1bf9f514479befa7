"""Human review of automated decisions (PIPL Art. 24 para. 3, checklist PIPL-ADM-03).

A member contests a churn score by its decision id; an officer sees the decision as made (inputs,
factors, model) in the review queue and records a verdict under their name; the member reads it.
Until then the decision is not final. A review is a rights request: same deadline, escalation, audit.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from api_fixtures import Api, open_api
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import update
from test_churn_scoring import events, switch_on_personalization, with_model
from typer.testing import CliRunner

from compliance.decisions import Decision, DecisionRow, Factor
from compliance.reviews import ReviewOutcome, ReviewRefused, check_verdict
from compliance.rights import Step, working_days_after
from federation.features import FEATURES
from node.cli.main import app

TODAY = datetime.now(UTC).date()
BANDS = ("low", "medium", "high")


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    """A node with a churn model, personalization on, and two members who allowed it (M-1, M-2), each with
    a few purchases."""
    a = open_api(tmp_path / "n", ("M-1", "M-2"))
    switch_on_personalization(a.node)
    with_model(a.node)
    for ref in ("M-1", "M-2"):
        grant = {"action": "grant", "purposes": ["personalization"]}
        assert a.client.post("/v1/me/consents", json=grant, headers=a.members[ref]).status_code == 200
        member = a.node.consent.member_pseudonym(ref)
        for i in range(3):
            day = TODAY - timedelta(days=30 * i + 3)
            a.node.wallets.earn(member, 100 + i, "purchase", day, day + timedelta(days=700), ref=f"p:{ref}:{i}")
    yield a
    a.node.dispose()


def _score(api: Api, ref: str = "M-1") -> dict[str, Any]:
    r = api.client.get("/v1/me/churn-risk", headers=api.members[ref])
    assert r.status_code == 200, r.text
    return r.json()


def _contest(api: Api, ref: str = "M-1", statement: str | None = "I shop every week") -> dict[str, Any]:
    decision_id = _score(api, ref)["decision_id"]
    r = api.client.post(
        "/v1/me/reviews", json={"decision_id": decision_id, "statement": statement}, headers=api.members[ref]
    )
    assert r.status_code == 201, r.text
    return r.json()


def _other_band(band: str) -> str:
    return next(b for b in BANDS if b != band)


def _decision(**changes: Any) -> Decision:
    fields = {
        "member": "a" * 32,
        "kind": "churn_score",
        "result": "high",
        "choices": BANDS,
        "inputs": {"recency_days": 40.0},
        "factors": (Factor("recency_days", 0.2),),
        "model": {"run": "r", "round": 1},
        "score": 0.7,
    }
    return Decision(**(fields | changes))


# --- pure: decisions and verdicts -----------------------------------------------------------------


def test_a_decision_result_must_be_one_of_its_possible_results() -> None:
    with pytest.raises(ValueError, match="choices"):
        _decision(result="very high")


@given(st.sampled_from(list(FEATURES)), st.floats(-1e6, 1e6, allow_nan=False))
def test_the_records_hash_changes_with_any_input(feature: str, delta: float) -> None:
    d = _decision(inputs={f: 1.0 for f in FEATURES})
    changed = _decision(inputs=d.inputs | {feature: 1.0 + delta}, decision_id=d.decision_id, made_at=d.made_at)
    assert (changed.sha256() == d.sha256()) == (1.0 + delta == 1.0)


@pytest.mark.parametrize(
    ("outcome", "reasons", "changed_to", "reason"),
    [
        (ReviewOutcome.UPHELD, "  ", None, "reasons_missing"),
        (ReviewOutcome.UPHELD, "fine", "low", "changed_to_with_upheld"),
        (ReviewOutcome.CHANGED, "too high", None, "changed_to_missing"),
        (ReviewOutcome.CHANGED, "too high", "none", "not_a_choice"),
        (ReviewOutcome.CHANGED, "too high", "high", "unchanged_result"),
    ],
)
def test_a_verdict_says_why_and_a_change_names_another_possible_result(
    outcome: ReviewOutcome, reasons: str, changed_to: str | None, reason: str
) -> None:
    with pytest.raises(ReviewRefused) as refused:
        check_verdict(_decision(), outcome, reasons, changed_to)
    assert refused.value.reason == reason


# --- the decision as made --------------------------------------------------------------------------


def test_a_score_answer_names_its_decision_kept_with_its_inputs_and_factors(api: Api) -> None:
    body = _score(api)
    decision = api.node.decisions.get(body["decision_id"])
    assert decision is not None
    assert decision.member == api.node.consent.member_pseudonym("M-1")
    assert (decision.result, decision.score) == (body["band"], body["risk"])
    assert set(decision.inputs) == set(FEATURES)
    assert [(f.feature, f.effect) for f in decision.factors] == [(f["feature"], f["effect"]) for f in body["factors"]]
    decided = [e for e in events(api.node) if e.action == "adm.decide"][-1]
    assert decided.details["decision_id"] == decision.decision_id
    assert decided.details["record_sha256"] == decision.sha256()
    assert (body["final"], body["review"]) == (True, None)


# --- contesting -----------------------------------------------------------------------------------


def test_a_member_contests_a_score_and_gets_a_pending_review_due_in_15_working_days(api: Api) -> None:
    review = _contest(api)
    assert review["status"] == "pending"
    assert review["deadline"] == working_days_after(TODAY, 15).isoformat()
    assert review["statement"] == "I shop every week"
    assert review["verdict"] is None
    new = [e for e in events(api.node) if e.dsr_id == review["id"]]
    assert [e.action for e in new] == ["dsr.received", "dsr.verified"]
    assert new[0].details["kind"] == "review"
    assert new[0].details["decision_id"] == review["decision"]["decision_id"]


def test_a_pending_review_leaves_the_members_score_not_final_for_them_and_the_operators(api: Api) -> None:
    review = _contest(api)
    body = _score(api)
    assert body["final"] is False
    assert (body["review"]["id"], body["review"]["status"]) == (review["id"], "pending")
    listed = api.client.get("/v1/members/at-risk", params={"min_risk": 0.0}, headers=api.operator).json()
    finality = {m["member"]: m["final"] for m in listed["members"]}
    assert finality == {api.node.consent.member_pseudonym("M-1"): False, api.node.consent.member_pseudonym("M-2"): True}


def test_contesting_another_members_decision_is_404_and_records_nothing(api: Api) -> None:
    theirs = _score(api, "M-2")["decision_id"]
    before = api.node.store.log("audit").size
    r = api.client.post("/v1/me/reviews", json={"decision_id": theirs}, headers=api.members["M-1"])
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["reason_code"] == "unknown_decision"
    assert api.node.store.log("audit").size == before
    assert api.node.rights.queue() == []


def test_contesting_a_decision_that_does_not_exist_is_404(api: Api) -> None:
    r = api.client.post("/v1/me/reviews", json={"decision_id": "0" * 32}, headers=api.members["M-1"])
    assert (r.status_code, r.json()["reason_code"]) == (404, "unknown_decision")


def test_a_decision_is_contested_once(api: Api) -> None:
    review = _contest(api)
    again = {"decision_id": review["decision"]["decision_id"]}
    r = api.client.post("/v1/me/reviews", json=again, headers=api.members["M-1"])
    assert (r.status_code, r.json()["reason_code"]) == (409, "already_contested")


def test_a_member_cannot_read_another_members_review(api: Api) -> None:
    review = _contest(api)
    r = api.client.get(f"/v1/me/reviews/{review['id']}", headers=api.members["M-2"])
    assert (r.status_code, r.json()["reason_code"]) == (404, "unknown_review")


# --- the staff queue and the verdict -------------------------------------------------------------


def test_officers_see_each_pending_review_with_the_decisions_inputs_and_factors(api: Api) -> None:
    review = _contest(api)
    [queued] = api.client.get("/v1/reviews", headers=api.officer).json()
    assert queued["id"] == review["id"]
    assert queued["member"] == api.node.consent.member_pseudonym("M-1")
    assert set(queued["decision"]["inputs"]) == set(FEATURES)
    assert len(queued["decision"]["factors"]) == 3
    assert queued["statement"] == "I shop every week"
    assert (queued["overdue"], queued["audited"]) == (False, True)


def test_a_decision_record_altered_after_it_was_made_shows_as_not_audited(api: Api) -> None:
    review = _contest(api)
    t = DecisionRow.__table__
    with api.node.store.engine.begin() as conn:
        row = conn.execute(t.select().where(t.c.decision_id == review["decision"]["decision_id"])).one()
        body = row.body.replace('"recency_days":', '"recency_days":1', 1)
        conn.execute(update(t).where(t.c.decision_id == row.decision_id).values(body=body))
    [queued] = api.client.get("/v1/reviews", headers=api.officer).json()
    assert queued["audited"] is False


def test_an_officer_upholds_a_decision_and_the_member_reads_the_verdict(api: Api) -> None:
    review = _contest(api)
    verdict = {"outcome": "upheld", "reasons": "Three purchases in ninety days: the model read them right."}
    r = api.client.post(f"/v1/reviews/{review['id']}/outcome", json=verdict, headers=api.officer)
    assert r.status_code == 200, r.text
    assert r.json()["verdict"]["reviewer"] == "chen"
    mine = api.client.get(f"/v1/me/reviews/{review['id']}", headers=api.members["M-1"]).json()
    assert mine["status"] == "upheld"
    assert mine["verdict"]["reasons"] == verdict["reasons"]
    assert mine["verdict"]["on_time"] is True
    assert "reviewer" not in mine["verdict"]  # staff names stay with staff
    reviewed = [e for e in events(api.node) if e.dsr_id == review["id"]][-2:]
    assert [e.action for e in reviewed] == ["dsr.completed", "adm.human_review"]
    assert (reviewed[1].actor.type, reviewed[1].actor.id) == ("staff", "chen")
    assert reviewed[1].details["outcome"] == "upheld"
    assert api.client.get("/v1/reviews", headers=api.officer).json() == []
    assert _score(api)["final"] is True


def test_a_changed_decision_tells_the_member_and_the_operators_the_new_result(api: Api) -> None:
    review = _contest(api)
    band = _other_band(review["decision"]["result"])
    verdict = {"outcome": "changed", "changed_to": band, "reasons": "A seasonal buyer, not leaving."}
    assert api.client.post(f"/v1/reviews/{review['id']}/outcome", json=verdict, headers=api.officer).status_code == 200
    mine = api.client.get(f"/v1/me/reviews/{review['id']}", headers=api.members["M-1"]).json()
    assert (mine["status"], mine["verdict"]["changed_to"]) == ("changed", band)
    listed = api.client.get("/v1/members/at-risk", params={"min_risk": 0.0}, headers=api.operator).json()
    mine_listed = next(m for m in listed["members"] if m["member"] == api.node.consent.member_pseudonym("M-1"))
    assert (mine_listed["final"], mine_listed["review"]["changed_to"]) == (True, band)
    human = [e for e in events(api.node) if e.action == "adm.human_review"][-1]
    assert (human.details["changed_from"], human.details["changed_to"]) == (review["decision"]["result"], band)


def test_a_change_to_the_same_result_is_refused_and_the_review_stays_pending(api: Api) -> None:
    review = _contest(api)
    same = {"outcome": "changed", "changed_to": review["decision"]["result"], "reasons": "no"}
    r = api.client.post(f"/v1/reviews/{review['id']}/outcome", json=same, headers=api.officer)
    assert (r.status_code, r.json()["reason_code"]) == (422, "unchanged_result")
    assert [q["id"] for q in api.client.get("/v1/reviews", headers=api.officer).json()] == [review["id"]]


def test_a_review_gets_one_verdict(api: Api) -> None:
    review = _contest(api)
    verdict = {"outcome": "upheld", "reasons": "checked"}
    assert api.client.post(f"/v1/reviews/{review['id']}/outcome", json=verdict, headers=api.officer).status_code == 200
    r = api.client.post(f"/v1/reviews/{review['id']}/outcome", json=verdict, headers=api.officer)
    assert (r.status_code, r.json()["reason_code"]) == (409, "already_decided")


def test_a_verdict_on_a_review_that_does_not_exist_is_404(api: Api) -> None:
    r = api.client.post("/v1/reviews/nope/outcome", json={"outcome": "upheld", "reasons": "x"}, headers=api.officer)
    assert (r.status_code, r.json()["reason_code"]) == (404, "unknown_review")


# --- deadline, escalation, erasure, access, retention ---------------------------------------------


def test_a_review_past_its_deadline_is_flagged_in_the_queue_and_escalated(api: Api) -> None:
    review = _contest(api)
    late = working_days_after(TODAY, 15) + timedelta(days=1)
    [queued] = api.node.reviews.queue()
    assert queued.as_json(late, staff=True)["overdue"] is True
    assert [r.dsr_id for r in api.node.rights.escalate(late)] == [review["id"]]
    escalated = [e for e in events(api.node) if e.action == "dsr.escalated"][-1]
    assert (escalated.dsr_id, escalated.details["kind"]) == (review["id"], "review")


def test_erasure_closes_a_pending_review_and_deletes_the_decisions_and_statements(api: Api) -> None:
    review = _contest(api)
    member = api.node.consent.member_pseudonym("M-1")
    api.node.rights.erase("M-1")
    [req] = [r for r in api.node.consent.store.requests(member) if r.dsr_id == review["id"]]
    assert (req.state, req.steps[-1].reason_code) == (Step.REFUSED, "member_erased")
    assert api.node.decisions.of_member(member) == []
    assert api.node.reviews.queue() == []
    assert api.node.rights.escalate(TODAY + timedelta(days=60)) == []


def test_an_access_request_includes_the_members_decisions_and_reviews(api: Api) -> None:
    review = _contest(api)
    data = api.node.rights.access("M-1")
    assert [d["decision_id"] for d in data["automated_decisions"]] == [review["decision"]["decision_id"]]
    assert [(r["review_id"], r["statement"]) for r in data["decision_reviews"]] == [(review["id"], "I shop every week")]


def test_the_retention_purge_takes_a_finished_reviews_statement_and_verdict_with_its_request(api: Api) -> None:
    review = _contest(api)
    api.node.reviews.decide(review["id"], ReviewOutcome.UPHELD, "chen", "checked")
    report = api.node.retention.purge(now=datetime.now(UTC) + timedelta(days=4 * 366))
    assert report.rights_requests >= 1
    assert api.node.reviews.store.rows([review["id"]]) == []


# --- the staff's commands -------------------------------------------------------------------------


def test_the_cli_lists_reviews_with_their_factors_and_records_a_verdict_under_the_staff_name(api: Api) -> None:
    review = _contest(api)
    base = ["--data-dir", str(api.node.settings.data_dir)]
    listed = CliRunner().invoke(app, ["rights", "reviews", *base])
    assert listed.exit_code == 0, listed.output
    assert review["id"] in listed.output
    assert "factors:" in listed.output
    assert "inputs:" in listed.output
    band = _other_band(review["decision"]["result"])
    args = ["--outcome", "changed", "--changed-to", band, "--reasons", "seasonal", "--as", "chen"]
    decided = CliRunner().invoke(app, ["rights", "decide", review["id"], *args, *base])
    assert decided.exit_code == 0, decided.output
    assert f"changed to {band}, on time" in decided.output
    assert api.node.reviews.get(review["id"]).verdict.reviewer == "chen"  # type: ignore[union-attr]


def test_the_cli_refuses_a_verdict_from_someone_without_a_compliance_key(api: Api) -> None:
    review = _contest(api)
    args = ["--outcome", "upheld", "--reasons", "fine", "--as", "olga"]  # an operator
    r = CliRunner().invoke(
        app, ["rights", "decide", review["id"], *args, "--data-dir", str(api.node.settings.data_dir)]
    )
    assert r.exit_code == 1
    assert "no active compliance key" in r.output
    assert api.node.reviews.get(review["id"]).pending
