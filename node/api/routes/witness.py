"""The C2SP tlog-witness ``add-checkpoint`` endpoint: this node cosigns its peers' checkpoints."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from ledger.witness import AddCheckpoint, SizeConflict, SplitView, WitnessError
from node.api.bodies import OffLoopJsonRoute
from node.api.deps import NodeDep
from node.api.problems import Problem

router = APIRouter(prefix="/v1/witness", tags=["witness"], route_class=OffLoopJsonRoute)


@router.post(
    "/add-checkpoint",
    response_class=PlainTextResponse,
    openapi_extra={"requestBody": {"required": True, "content": {"text/plain": {"schema": {"type": "string"}}}}},
    responses={
        403: {"description": "the checkpoint is not signed by a trusted peer's key"},
        404: {"description": "the checkpoint's origin is no log of a trusted peer"},
        409: {"content": {"text/x.tlog.size": {}}, "description": "old size mismatch: our latest size"},
    },
)
async def add_checkpoint(request: Request, node: NodeDep) -> Response:
    """Cosign a peer's checkpoint if it is consistent with the last one cosigned (C2SP tlog-witness).

    Statuses follow the spec: 400 malformed, 403 bad signature, 404 unknown log, 409 old size
    mismatch (body: our size, ``text/x.tlog.size``) or split view at equal size, 422 inconsistent.
    """
    body = await request.body()  # capped by node.api.bodies (setting body_limits.witness): 413 past it
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Problem(400, "request body is not UTF-8") from exc
    try:
        # the witness waits on the database: keep it off the event loop so /health stays live
        line = await run_in_threadpool(node.witness.add_checkpoint, AddCheckpoint.parse(text))
    except SplitView as exc:
        raise Problem(409, str(exc)) from exc
    except SizeConflict as exc:
        return Response(f"{exc.latest_size}\n", status_code=409, media_type="text/x.tlog.size")
    except WitnessError as exc:
        raise Problem(exc.status, str(exc)) from exc
    return PlainTextResponse(line)
