"""Peer calls to other nodes' ASGI apps in this process: the same signing, checks and handlers as over the
network, without a server (``federate vertical --node DIR...`` opens every node here; tests and the demo too)."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Mapping
from typing import Any

import httpx


class InProcess(httpx.BaseTransport):
    """A transport to ASGI apps in this process, by base URL; any other URL cannot be reached."""

    def __init__(self, apps: Mapping[str, Any]) -> None:
        self.apps = {url.rstrip("/"): httpx.ASGITransport(app=app) for url, app in apps.items()}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        transport = self.apps.get(f"{request.url.scheme}://{request.url.netloc.decode()}")
        if transport is None:
            raise httpx.ConnectError(f"no node in this process answers {request.url}", request=request)
        body = request.read()

        async def call() -> httpx.Response:
            inner = httpx.Request(request.method, request.url, headers=request.headers, content=body)
            response = await transport.handle_async_request(inner)
            content = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=content, request=request)

        # each call gets its own event loop (the caller is synchronous code with none of its own) and a
        # context of its own: the other node must not see who this one acts for, as over the network
        return contextvars.Context().run(asyncio.run, call())
