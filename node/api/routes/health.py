"""Liveness."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from node.api.bodies import OffLoopJsonRoute
from node.api.deps import NodeDep

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
