"""Liveness (``/health``), readiness (``/ready``) and the Prometheus metrics (``/metrics``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from node.api.bodies import OffLoopJsonRoute
from node.api.deps import NodeDep, Watcher
from node.api.problems import Problem
from node.ops.metrics import CONTENT_TYPE_LATEST
from node.ops.readiness import readiness

router = APIRouter(tags=["health"], route_class=OffLoopJsonRoute)


class Health(BaseModel):
    """The node answers and knows who it is."""

    status: str
    node_id: str
    region: str


@router.get("/health")
def health(node: NodeDep) -> Health:
    """Return 200 while the node is up."""
    return Health(status="ok", node_id=node.settings.node_id, region=node.settings.region)


class CheckResult(BaseModel):
    """One readiness check."""

    name: str
    ok: bool
    reason: str = ""


class Readiness(BaseModel):
    """Whether the node can serve now, and each check behind the answer."""

    status: str
    checks: list[CheckResult]


@router.get(
    "/ready",
    responses={
        503: {
            "model": Readiness,
            "description": "a check failed: its reason says which",
            "headers": {"Retry-After": {"description": "seconds before probing again", "schema": {"type": "integer"}}},
        }
    },
)
def ready(node: NodeDep) -> JSONResponse:
    """200 when the database answers, its schema is current, the signing key is readable and the node was not
    decommissioned; 503 otherwise."""
    checks = readiness(node)
    ok = all(c.ok for c in checks)
    body = Readiness(
        status="ready" if ok else "not_ready",
        checks=[CheckResult(name=c.name, ok=c.ok, reason=c.reason) for c in checks],
    )
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503, headers=None if ok else {"Retry-After": "5"})


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def metrics(request: Request, _: Watcher) -> Response:
    """The node's metrics in the Prometheus text format, for staff and host keys (Prometheus sends one as a
    bearer token: ``authorization: {credentials: <key>}``); 404 when the ``metrics`` setting is off.

    No metric holds personal data, but exchange and consent volumes are a brand's business: not public."""
    collected = request.app.state.metrics
    if collected is None:
        raise Problem(404, "metrics are off on this node (setting: metrics)")
    return Response(collected.exposition(), media_type=CONTENT_TYPE_LATEST)
