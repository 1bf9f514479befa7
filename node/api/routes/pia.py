"""Impact assessments and feature switches for staff: submit, approve (four eyes), switch, report."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, PlainTextResponse
from pydantic import BaseModel, Field

from compliance.pia import Assessment, Feature, PiaRecord, utcnow
from compliance.pia_report import document, to_html, to_markdown
from node.api.bodies import OffLoopJsonRoute
from node.api.deps import ComplianceOfficer, NodeDep, Operator, Staff, Watcher
from node.api.problems import Problem
from node.runtime_facts import gather

router = APIRouter(tags=["impact assessments"], route_class=OffLoopJsonRoute)


class Submission(BaseModel):
    """An assessment to submit, with an optional id (default: ``pia-`` and a digest)."""

    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._:-]{1,80}$")
    assessment: Assessment


class PiaState(BaseModel):
    """An assessment and where it stands."""

    id: str
    status: str
    features: list[str]
    sha256: str
    author: str
    approver: str | None
    expires_at: datetime | None


class Switch(BaseModel):
    """Turn a feature on under an assessment, or off."""

    enabled: bool
    pia_id: str | None = Field(default=None, max_length=80)


class SwitchState(BaseModel):
    """Whether a feature is effectively on, under which assessment, and why."""

    feature: str
    on: bool
    pia_id: str | None
    reason: str


def _state(r: PiaRecord) -> PiaState:
    return PiaState(
        id=r.pia_id,
        status=r.status(utcnow()).value,
        features=[f.value for f in r.assessment.features],
        sha256=r.assessment.sha256,
        author=r.author,
        approver=r.approver,
        expires_at=r.expires_at,
    )


@router.get("/v1/pia")
def list_pias(node: NodeDep, _: Staff) -> list[PiaState]:
    """Every assessment, oldest first."""
    return [_state(r) for r in node.pia.all()]


@router.post("/v1/pia", status_code=201)
def submit(node: NodeDep, me: Staff, body: Submission) -> PiaState:
    """Submit an assessment as a draft; another compliance officer approves it."""
    return _state(node.pia.submit(body.assessment, me.id, body.id))


@router.post("/v1/pia/{pia_id}/approval")
def approve(node: NodeDep, me: ComplianceOfficer, pia_id: str) -> PiaState:
    """Approve an assessment (not its author's own; once)."""
    return _state(node.pia.approve(pia_id, me.id))


@router.get(
    "/v1/pia/report",
    response_model=None,
    responses={
        200: {
            "description": "the report, as Markdown (default) or HTML",
            "content": {"text/markdown": {"schema": {"type": "string"}}, "text/html": {"schema": {"type": "string"}}},
        }
    },
)
def report(
    node: NodeDep,
    _: ComplianceOfficer,
    format: Literal["markdown", "html"] = "markdown",
    lang: Literal["zh-CN", "en"] = "zh-CN",
) -> PlainTextResponse | HTMLResponse:
    """The assessment report from the node's live configuration, data map and counters (Chinese by default)."""
    doc = document(gather(node), lang)
    if format == "html":
        return HTMLResponse(to_html(doc, lang))
    return PlainTextResponse(to_markdown(doc), media_type="text/markdown")


@router.get("/v1/features")
def features(node: NodeDep, _: Watcher) -> list[SwitchState]:
    """Each feature switch as it takes effect now (an expired assessment turns a feature off)."""
    return [
        SwitchState(feature=f.value, on=on, pia_id=p, reason=why) for f, (on, p, why) in node.pia.switches().items()
    ]


@router.put("/v1/features/{feature}")
def switch(node: NodeDep, me: Operator, feature: Feature, body: Switch) -> SwitchState:
    """Switch a feature on (needs an approved, unexpired assessment covering it) or off."""
    if body.enabled:
        if not body.pia_id:
            raise Problem(422, "switching a feature on needs the pia_id of an approved assessment")
        node.pia.enable(feature, body.pia_id, me.id)
    else:
        node.pia.disable(feature, me.id)
    on, pia_id, why = node.pia.switches()[feature]
    return SwitchState(feature=feature.value, on=on, pia_id=pia_id, reason=why)
