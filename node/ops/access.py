"""Request ids and the structured access log: one ASGI middleware around the whole site.

Each request gets an id: the caller's ``X-Request-ID`` when it is a plausible one, else a new one.
The id is returned in the response's ``X-Request-ID``, set for every log line while the request is
served (:mod:`node.ops.logsetup`) and put in problem+json bodies (:mod:`node.api.problems`).

The access line names the route's template (``/v1/members/{member_id}``), never the path it
matched or the query: paths carry member ids and privacy links carry tokens.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from node.ops.logsetup import request_id

HEADER = "x-request-id"
_PLAUSIBLE = re.compile(r"[A-Za-z0-9._:-]{8,64}")  # a uuid, a ULID, a trace id; nothing that could carry data
UNMATCHED = "unmatched"

access_log = logging.getLogger("alliance.access")


def new_request_id() -> str:
    """A fresh request id."""
    return uuid.uuid4().hex


def accepted_request_id(header: str | None) -> str:
    """The caller's id if it is plausible, else a fresh one (an id is never an arbitrary string to log)."""
    return header if header is not None and _PLAUSIBLE.fullmatch(header) else new_request_id()


def route_template(scope: Scope) -> str:
    """The template of the route that served the request (``unmatched`` when none did)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    mounted = scope.get("root_path") or ""  # a mount (the static files) extends the root path
    return f"{mounted}/*" if mounted else UNMATCHED


Observer = Callable[[str, str, int, float], None]
#: Renders an exception no handler took (a 500) as the response to send.
ErrorRenderer = Callable[[Scope, Exception], ASGIApp]


class RequestContext:
    """Sets the request id, returns it, and writes one access line per request (and tells ``observe``).

    An exception no handler took is answered here, with ``render_error``, while the id is still set:
    Starlette's own last-resort handler runs outside every middleware, where the id is gone.
    """

    def __init__(self, app: ASGIApp, observe: Observer | None = None, render_error: ErrorRenderer | None = None):
        self.app = app
        self.observe = observe
        self.render_error = render_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request inside its id."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = accepted_request_id(_header(scope, HEADER))
        token = request_id.set(rid)
        scope.setdefault("state", {})["request_id"] = rid
        status = 500  # what the client gets if the app fails before answering
        started = time.perf_counter()
        answered = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status, answered = int(message["status"]), True
                message["headers"] = [*message.get("headers", []), (HEADER.encode(), rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if answered or self.render_error is None:
                raise
            await self.render_error(scope, exc)(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = route_template(scope)
            method = str(scope.get("method", ""))
            access_log.info(
                "%s %s %d %.1f ms",
                method,
                route,
                status,
                seconds * 1000,
                extra={"method": method, "route": route, "status": status, "duration_ms": round(seconds * 1000, 2)},
            )
            if self.observe is not None:
                self.observe(method, route, status, seconds)
            request_id.reset(token)


def _header(scope: Scope, name: str) -> str | None:
    for key, value in scope.get("headers", []):
        if key.decode("latin-1").lower() == name:
            return value.decode("latin-1")
    return None
