"""The node's FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

from node import package_version
from node.api import openapi, problems
from node.api.bodies import BodyGuard, route_access
from node.api.ratelimits import Limiters
from node.api.routes import audit, churn, exchange, health, logs, me, members, notices, peer, pia, requests, witness
from node.chain.anchoring import AnchorLoop, from_settings
from node.exchange.recovery import RecoveryLoop
from node.ops.access import RequestContext
from node.ops.jobs import JobLoop, Scheduler
from node.ops.metrics import Metrics
from node.runtime import Node

ROUTERS = (
    health.router,
    logs.router,
    witness.router,
    notices.router,
    churn.router,
    members.router,
    me.router,
    audit.router,
    pia.router,
    requests.router,
    exchange.router,
    peer.router,
)


def _anchor_loop(node: Node) -> AnchorLoop | None:
    """The anchoring loop, when the node's settings name a chain (off otherwise)."""
    if not node.settings.chain_rpc_url:
        return None
    anchorer = from_settings(node.settings, node.store)
    return AnchorLoop(anchorer, min(node.settings.anchor_every_seconds, 60.0)) if anchorer else None


def create_app(node: Node, recovery: bool = False, jobs: bool = False) -> FastAPI:
    """Build the API of ``node`` (OpenAPI at ``/openapi.json``; its docs are pages of :mod:`node.web`,
    served from the package rather than FastAPI's default CDN).

    With ``recovery`` (what ``serve`` uses) unfinished exchanges are resumed at start-up and
    retried every ``recovery_interval`` seconds while the app runs. With ``jobs`` the daily duties
    run on their schedules (:mod:`node.ops.jobs`).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = RecoveryLoop(node.exchange_recovery, node.settings.recovery_interval) if recovery else None
        anchoring = _anchor_loop(node) if recovery else None
        duties = JobLoop(Scheduler(node)) if jobs else None
        for started in (loop, anchoring, duties):
            if started is not None:
                started.start()
        if anchoring is not None and app.state.metrics is not None:
            app.state.metrics.anchorer = anchoring.anchorer
        try:
            yield
        finally:
            for started in (loop, anchoring, duties):
                if started is not None:
                    started.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="Alliance node",
        summary=f"Loyalty alliance node {node.settings.node_id}",
        version=package_version(),
        docs_url=None,
        redoc_url=None,
    )
    app.state.node = node
    app.state.limiters = Limiters.from_settings(node.settings.rate_limits)
    problems.install(app)
    for router in ROUTERS:
        app.include_router(router)
    routes = route_access(ROUTERS)
    # caps bodies, authenticates before reading them, verifies peer signatures before parsing
    app.add_middleware(BodyGuard, routes=routes)
    app.state.metrics = Metrics(node) if node.settings.metrics else None
    # outside the guard: a refused request has an id and an access line too
    app.add_middleware(
        RequestContext,
        observe=app.state.metrics.observe if app.state.metrics else None,
        render_error=lambda scope, exc: problems.error_response(exc, Request(scope)),
    )
    openapi.install(app, routes)
    return app
