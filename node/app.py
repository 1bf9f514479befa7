"""The node's FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI

from node import problems
from node.identity import Node
from node.routes import audit, health, logs, me, members, notices, pia, requests, witness


def create_app(node: Node) -> FastAPI:
    """Build the API of ``node`` (OpenAPI at ``/openapi.json``, docs at ``/docs``)."""
    app = FastAPI(
        title="Alliance node",
        summary=f"Loyalty alliance node {node.settings.node_id}",
        version="0.1.0",
    )
    app.state.node = node
    problems.install(app)
    app.include_router(health.router)
    app.include_router(logs.router)
    app.include_router(witness.router)
    app.include_router(notices.router)
    app.include_router(members.router)
    app.include_router(me.router)
    app.include_router(audit.router)
    app.include_router(pia.router)
    app.include_router(requests.router)
    return app
