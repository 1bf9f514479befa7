"""Rights requests for compliance officers (the queue), and human review of automated decisions:
members contest a decision, officers decide the review (PIPL Art. 24 para. 3)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from compliance.reviews import MAX_TEXT, Review, ReviewOutcome
from node.api.bodies import OffLoopJsonRoute
from node.api.deps import ComplianceOfficer, Member, MemberWrite, NodeDep

router = APIRouter(tags=["rights requests"], route_class=OffLoopJsonRoute)
Id = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]


class QueuedRequest(BaseModel):
    """An open request: who (pseudonym), what, where it stands, and whether it is late."""

    id: str
    member: str
    kind: str
    state: str
    received_at: datetime
    deadline: date
    overdue: bool


@router.get("/v1/requests")
def queue(node: NodeDep, _: ComplianceOfficer, overdue: bool = False) -> list[QueuedRequest]:
    """Open requests, earliest deadline first (``overdue=true``: only those past their deadline)."""
    today = datetime.now(UTC).date()
    rows = [
        QueuedRequest(
            id=r.dsr_id,
            member=r.member,
            kind=r.kind.value,
            state=str(r.state),
            received_at=r.received_at,
            deadline=r.deadline,
            overdue=r.overdue(today),
        )
        for r in node.rights.queue()
    ]
    return [r for r in rows if r.overdue] if overdue else rows


# --- human review of automated decisions ---------------------------------------------------------


class Contest(BaseModel):
    """Ask a person to review one of my automated decisions (the ``decision_id`` of a score answer)."""

    decision_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
    statement: str | None = Field(None, max_length=MAX_TEXT, description="why I contest it, in my own words")


class DecisionFactor(BaseModel):
    """One input's effect on the result (positive: it raised the score)."""

    feature: str
    effect: float


class DecisionRecord(BaseModel):
    """An automated decision as it was made: inputs, result among its possible results, factors, model."""

    decision_id: str
    kind: str
    made_at: datetime
    result: str
    choices: list[str]
    score: float | None
    inputs: dict[str, float]
    factors: list[DecisionFactor]
    model: dict[str, Any]


class Verdict(BaseModel):
    """What the person who reviewed the decision found, and why."""

    outcome: str
    changed_to: str | None
    reasons: str
    decided_at: datetime
    on_time: bool = Field(description="decided by the review's deadline")


class MyReview(BaseModel):
    """A review of one of my decisions: pending until a person decides, then their verdict."""

    id: str
    status: str = Field(description="pending (the decision is not final), upheld, changed or closed")
    received_at: datetime
    deadline: date
    decision: DecisionRecord
    statement: str | None
    verdict: Verdict | None
    complaint_route: str


class StaffVerdict(Verdict):
    """The verdict with who gave it."""

    reviewer: str


class QueuedReview(MyReview):
    """A review as officers see it: the member's pseudonym, lateness, and whether the record is the audited one."""

    member: str
    overdue: bool
    audited: bool = Field(description="the decision's record matches the SHA-256 its adm.decide event pinned")
    verdict: StaffVerdict | None


class Outcome(BaseModel):
    """A person's verdict: the decision upheld, or changed to another of its possible results, with reasons."""

    outcome: Literal["upheld", "changed"]
    reasons: str = Field(min_length=1, max_length=MAX_TEXT)
    changed_to: str | None = Field(None, max_length=50, description="the new result of a changed decision")


def _staff(node: NodeDep, review: Review, today: date) -> QueuedReview:
    return QueuedReview(**review.as_json(today, staff=True), audited=node.reviews.audited(review))


@router.post("/v1/me/reviews", status_code=201)
def contest(node: NodeDep, me: MemberWrite, body: Contest) -> MyReview:
    """Contest one of my automated decisions: a person reviews it within 15 working days, and until then
    it is not final (audited as a rights request of kind ``review``)."""
    review = node.reviews.contest(me.id, body.decision_id, body.statement)
    return MyReview(**review.as_json(datetime.now(UTC).date()))


@router.get("/v1/me/reviews/{review_id}")
def my_review(node: NodeDep, me: Member, review_id: Id) -> MyReview:
    """One of my reviews: the decision as made, and the verdict once a person has given it."""
    return MyReview(**node.reviews.get(review_id, me.id).as_json(datetime.now(UTC).date()))


@router.get("/v1/reviews")
def review_queue(node: NodeDep, _: ComplianceOfficer, overdue: bool = False) -> list[QueuedReview]:
    """Reviews waiting for a person, earliest deadline first, with each decision's inputs and factors
    (``overdue=true``: only those past their deadline)."""
    today = datetime.now(UTC).date()
    rows = [_staff(node, r, today) for r in node.reviews.queue()]
    return [r for r in rows if r.overdue] if overdue else rows


@router.post("/v1/reviews/{review_id}/outcome")
def decide(node: NodeDep, me: ComplianceOfficer, review_id: Id, body: Outcome) -> QueuedReview:
    """Record my verdict on a review under my own name (audited as ``adm.human_review``); the member
    reads it at ``GET /v1/me/reviews/{id}``."""
    review = node.reviews.decide(review_id, ReviewOutcome(body.outcome), me.id, body.reasons, body.changed_to)
    return _staff(node, review, datetime.now(UTC).date())
