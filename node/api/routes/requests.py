"""The rights-request queue for compliance officers."""

from __future__ import annotations

from datetime import UTC, date, datetime

from fastapi import APIRouter
from pydantic import BaseModel

from node.api.bodies import OffLoopJsonRoute
from node.api.deps import ComplianceOfficer, NodeDep

router = APIRouter(prefix="/v1/requests", tags=["rights requests"], route_class=OffLoopJsonRoute)


class QueuedRequest(BaseModel):
    """An open request: who (pseudonym), what, where it stands, and whether it is late."""

    id: str
    member: str
    kind: str
    state: str
    received_at: datetime
    deadline: date
    overdue: bool


@router.get("")
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
