"""Churn scores: the member's own (only with personalization consent) and the operators' at-risk list."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from node.api.bodies import OffLoopJsonRoute
from node.api.deps import MemberWrite, NodeDep, Operator

router = APIRouter(tags=["churn"], route_class=OffLoopJsonRoute)
NO_MODEL = {409: {"description": "no churn model yet (no federated round has finished)"}}


class Factor(BaseModel):
    """One feature's effect on the risk against an average member."""

    feature: str
    effect: float
    direction: str


class ModelVersion(BaseModel):
    """The model a score came from: the run's joint model of ``round``, blended with the brand's own."""

    run: str
    round: int
    joint_share: float = Field(
        1.0, ge=0.0, le=1.0, description="The joint model's share in the brand's blend (1: as received)."
    )


class CrossBrandRisk(BaseModel):
    """The member's risk from the newest cross-brand (vertical) run that scored them, with the
    partners' side of them (only members who gave joint_modeling consent for that partner)."""

    run: str
    risk: float


class ReviewNote(BaseModel):
    """Where the member's newest review of a churn score stands (``GET /v1/me/reviews/{id}`` has all of it)."""

    id: str
    decision_id: str
    status: str = Field(description="pending (not final until a person decides), upheld, changed or closed")
    deadline: date
    changed_to: str | None = Field(None, description="the band the reviewer set, for a changed decision")


class ChurnRisk(BaseModel):
    """A member's churn risk; without personalization consent, the same answer for everyone."""

    personalised: bool
    risk: float | None
    band: str | None
    factors: list[Factor]
    model: ModelVersion | None = None
    note: str | None = None
    cross_brand: CrossBrandRisk | None = None
    decision_id: str | None = Field(
        None, description="this decision's id: contest it with POST /v1/me/reviews (none for the general answer)"
    )
    final: bool | None = Field(None, description="false while a review of the member's churn score is pending")
    review: ReviewNote | None = None


class AtRiskMember(BaseModel):
    """One member at risk, by pseudonym."""

    member: str
    personalised: bool
    risk: float
    band: str
    factors: list[Factor]
    final: bool = Field(True, description="false while the member's contest of their score awaits a person")
    review: ReviewNote | None = None


class AtRiskList(BaseModel):
    """Members with personalization consent whose risk is at least the threshold, highest first."""

    model: ModelVersion | None
    scored: int
    at_risk: int
    members: list[AtRiskMember]


def _today():  # type: ignore[no-untyped-def]
    return datetime.now(UTC).date()


@router.get("/v1/me/churn-risk", responses=NO_MODEL)
def my_churn_risk(node: NodeDep, me: MemberWrite) -> ChurnRisk:
    """My churn risk and its main factors, if I allowed personalization; otherwise the general answer."""
    return ChurnRisk(**node.churn_scoring.for_member(me.id, _today()))


@router.get("/v1/members/at-risk", responses=NO_MODEL)
def at_risk(
    node: NodeDep,
    _: Operator,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    min_risk: Annotated[float, Query(ge=0.0, le=1.0)] = 0.6,
) -> AtRiskList:
    """Members at risk of leaving, among those who allowed personalization (pseudonyms only)."""
    return AtRiskList(**node.churn_scoring.at_risk(_today(), limit, min_risk))
