"""The audit trail for compliance officers: filtered bundles verifiable offline with node.vkey."""

from __future__ import annotations

import tempfile
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from compliance.audit import AuditFilter
from node.api.bodies import OffLoopJsonRoute
from node.api.deps import ComplianceOfficer, NodeDep
from node.api.problems import Problem

router = APIRouter(prefix="/v1/audit", tags=["audit"], route_class=OffLoopJsonRoute)
Text = Annotated[str | None, Query(max_length=250)]


@router.get(
    "/bundle",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "an alliance-audit-bundle/1"}},
)
def bundle(
    node: NodeDep,
    _: ComplianceOfficer,
    from_ts: Annotated[datetime | None, Query(alias="from")] = None,
    to_ts: Annotated[datetime | None, Query(alias="to")] = None,
    action: Text = None,
    purpose: Text = None,
    member: Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9._:-]+$")] = None,
    recipient: Text = None,
) -> StreamingResponse:
    """The events a filter selects, each with an inclusion proof, and a signed manifest; the export is audited.

    Verify offline with ``alliance-node audit verify FILE --vkey node.vkey``.
    """
    subject = node.consent.member_pseudonym(member) if member else None
    try:
        flt = AuditFilter(
            from_ts=from_ts, to_ts=to_ts, action=action, purpose=purpose, subject=subject, recipient=recipient
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise Problem(422, f"bad filter: {first['msg'].removeprefix('Value error, ')}") from exc
    spool = tempfile.SpooledTemporaryFile(max_size=16 << 20)  # noqa: SIM115 - handed to the response
    manifest = node.audit.export(flt, spool)
    spool.seek(0)
    headers = {"Content-Disposition": f'attachment; filename="audit-{manifest.tree_size}.bundle.jsonl"'}
    return StreamingResponse(spool, media_type="application/x-ndjson", headers=headers)
