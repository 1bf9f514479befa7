"""The demo's stand-in for the brands' apps: member calls to the demo's own servers on 127.0.0.1.

Only the demo uses it, against servers it started itself (:mod:`node.local_servers`); a node's
own outbound calls go through :mod:`node.outbound`.
"""

from __future__ import annotations

from typing import Any

import httpx

LOOPBACK = "http://127.0.0.1"


class AppClient:
    """Keep-alive HTTP calls to one local node, each with a member's token."""

    def __init__(self, port: int) -> None:
        self.client = httpx.Client(base_url=f"{LOOPBACK}:{port}", timeout=60)

    def post(self, path: str, token: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST ``body`` as the member; the status and the JSON answer."""
        r = self.client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
        return r.status_code, r.json()

    def close(self) -> None:
        """Close the connections."""
        self.client.close()
