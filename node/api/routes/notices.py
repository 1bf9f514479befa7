"""Privacy notices: public to read (the exact bytes shown), published by compliance officers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path
from fastapi.responses import Response
from pydantic import BaseModel

from compliance.notices import parse_notice
from node.api.bodies import OffLoopJsonRoute
from node.api.deps import ComplianceOfficer, NodeDep
from node.api.problems import Problem

router = APIRouter(prefix="/v1/notices", tags=["notices"], route_class=OffLoopJsonRoute)


class NoticeInfo(BaseModel):
    """A published version."""

    version: int
    sha256: str
    published_at: str


@router.get("")
def list_notices(node: NodeDep) -> list[NoticeInfo]:
    """Every published version, oldest first."""
    notices = node.consent.store.notices()
    return [
        NoticeInfo(version=v, sha256=n.sha256(), published_at=n.published_at.isoformat())
        for v, n in sorted(notices.items())
    ]


@router.get("/{version}", response_class=Response, responses={200: {"content": {"application/json": {}}}})
def get_notice(node: NodeDep, version: Annotated[int, Path(ge=1, le=1_000_000)]) -> Response:
    """The exact bytes of that version, as members were shown them (their SHA-256 is in each consent)."""
    body = node.consent.store.notice_text(version)
    if body is None:
        raise Problem(404, f"no notice version {version}")
    return Response(body, media_type="application/json")


@router.post("", status_code=201)
def publish_notice(node: NodeDep, _: ComplianceOfficer, body: Annotated[dict[str, Any], Body()]) -> NoticeInfo:
    """Publish the next version; a notice missing any PIPL Art. 17 field is refused with the list."""
    notice = node.consent.publish_notice(parse_notice(body))
    return NoticeInfo(version=notice.version, sha256=notice.sha256(), published_at=notice.published_at.isoformat())
