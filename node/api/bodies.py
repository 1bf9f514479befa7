"""Request bodies: capped per route family, read only once the caller is authenticated, parsed off the event loop.

FastAPI reads and parses a request's JSON body before it solves the route's dependencies, so a
role check or a signature check in a dependency comes too late to spare the node a large body
from anyone. :class:`BodyGuard`, an ASGI middleware in front of every route, does it first:

1. a declared ``Content-Length`` above the route family's cap (setting ``body_limits``) is
   answered 413 at once, nothing read;
2. a route that needs credentials has them checked (401) before a byte of the body is read;
3. the body is read, chunked or not, up to the cap: 413 as soon as it passes it;
4. a peer route's RFC 9421 signature (digest included) is verified over the bytes read (401),
   before anything parses them, and only here: a second check would see a replayed nonce;
5. the app gets the buffered body replayed, and the authenticated caller in ``request.state``.

Behind it, :class:`OffLoopJsonRoute`, the route class of every router, parses large JSON bodies in a
worker thread.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from compliance.provisions import signature_digest
from node.api.deps import CALLER_STATE, PEER_STATE, Access, access_of, authenticate, credentials_needed
from node.api.problems import Problem, error_response
from node.core.settings import BodyLimits
from node.peers.signing import answering_call
from node.runtime import Node

#: Route families with a cap of their own (a field of ``BodyLimits``), by path prefix; the rest: ``default``.
FAMILIES: tuple[tuple[str, str], ...] = (
    ("/v1/peer/", "peer"),
    ("/v1/witness/", "witness"),
    ("/v1/notices", "documents"),
    ("/v1/pia", "documents"),
    ("/v1/purchases:batch", "bulk"),
    ("/console/pia", "documents"),  # an assessment pasted into the console's form
    ("/privacy/receipts/check", "documents"),
)
#: Smaller JSON bodies are parsed on the event loop: well under a millisecond, less than a thread hop.
PARSE_INLINE_BELOW = 32 * 1024


def body_limit(path: str, limits: BodyLimits) -> int:
    """The largest body, in bytes, a request to ``path`` may carry."""
    for prefix, family in FAMILIES:
        if path.startswith(prefix):
            return int(getattr(limits, family))
    return limits.default


def route_access(routers: Iterable[APIRouter]) -> list[tuple[APIRoute, Access]]:
    """Every route of ``routers`` with what it asks of its caller."""
    return [(r, access_of(r.dependant)) for router in routers for r in router.routes if isinstance(r, APIRoute)]


def too_large(limit: int) -> Problem:
    """The 413 for a body larger than ``limit`` bytes."""
    return Problem(413, f"the request body is larger than this endpoint's limit of {limit} bytes")


class BodyGuard:
    """The ASGI middleware described in this module's docstring."""

    def __init__(self, app: ASGIApp, routes: Sequence[tuple[APIRoute, Access]]) -> None:
        self.app = app
        self.routes = routes

    def access(self, scope: Scope) -> Access:
        """What the route serving this request asks of its caller (public when none does: 404, 405)."""
        for route, access in self.routes:
            if route.matches(scope)[0] is Match.FULL:
                scope["route"] = route  # what routing will set: the access log names it even for a refusal here
                return access
        return Access.PUBLIC

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Guard one request; anything but HTTP passes through."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        app: FastAPI = scope["app"]
        node: Node = app.state.node
        state = scope.setdefault("state", {})
        limit = body_limit(request.url.path, node.settings.body_limits)
        access = self.access(scope)
        read_all = False
        try:
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise too_large(limit)
            if access is Access.CREDENTIALS:
                # off the event loop: a member token is checked against its account in the database
                caller = await run_in_threadpool(
                    authenticate, request.headers.get("authorization"), node, app.state.limiters.failed_auth
                )
                if caller is None:
                    raise credentials_needed()
                state[CALLER_STATE] = caller
            body = await _read(receive, limit)
            if body is None:
                return  # the client left before sending its body: nobody to answer
            read_all = True
            if access is Access.PEER:
                # off the event loop: the digest covers up to the peer cap, and the nonce store may wait
                verify = node.peer_verifier.verify  # its nonces are kept in the node's database
                state[PEER_STATE] = await run_in_threadpool(
                    verify, request.method, str(request.url), request.headers.items(), body
                )
                answering_call.set(signature_digest(request.headers["signature"]))
        except Exception as exc:  # every refusal here (and any failure) is answered as problem+json
            response = error_response(exc, request)
            if not read_all and _has_body(request):
                # close rather than read a body nobody will use (RFC 9110 allows it, section 15.5.14);
                # uvicorn would otherwise keep reading it, to the end, to reuse the connection
                response.headers["Connection"] = "close"
            await response(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)


def _has_body(request: Request) -> bool:
    declared = request.headers.get("content-length", "")
    return (declared.isdigit() and int(declared) > 0) or "transfer-encoding" in request.headers


async def _read(receive: Receive, limit: int) -> bytes | None:
    """The whole body, refusing (413) as soon as it passes ``limit``; ``None`` if the client left."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if len(body) > limit:
            raise too_large(limit)
        if not message.get("more_body", False):
            return bytes(body)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` giving the app ``body`` in one message, then whatever the server sends next."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # waits for the disconnect, as a streaming response expects

    return replay


class OffLoopJsonRequest(Request):
    """A request whose large JSON body is parsed in a worker thread, so that other requests go on meanwhile."""

    async def json(self) -> Any:
        """The body parsed as JSON (once)."""
        if not hasattr(self, "_json"):
            body = await self.body()
            inline = len(body) < PARSE_INLINE_BELOW
            self._json = json.loads(body) if inline else await run_in_threadpool(json.loads, body)
        return self._json


class OffLoopJsonRoute(APIRoute):
    """A route handing FastAPI an :class:`OffLoopJsonRequest` (FastAPI's documented custom route class pattern)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, given the request as an :class:`OffLoopJsonRequest`."""
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            return await handler(OffLoopJsonRequest(request.scope, request.receive))

        return route_handler
