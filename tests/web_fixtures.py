"""A node's whole site (API and pages) behind TestClients: signed-in members and staff, and the CSRF token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from compliance_fixtures import notice_data
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from node.core.auth import Role
from node.demo.alliance import BrandSpec, create_alliance
from node.runtime import Node
from node.web.site import create_site

PARTNER = "shop.alliance.example"


@dataclass
class Site:
    """One brand's node in a two-brand alliance, its site, and the keys of three staff and an entrusted host."""

    node: Node
    app: FastAPI
    officer: str  # compliance officer "chen"
    second_officer: str  # compliance officer "wang"
    operator: str  # operator "olga"
    host: str  # entrusted host "hugo"
    clients: list[TestClient] = field(default_factory=list)

    def client(self) -> TestClient:
        """A browser with no session."""
        c = TestClient(self.app, raise_server_exceptions=False, follow_redirects=False)
        self.clients.append(c)
        return c

    def api(self, key: str) -> dict[str, str]:
        """The headers of an API call with ``key``."""
        return {"Authorization": f"Bearer {key}"}

    def privacy_link(self, member_ref: str) -> str:
        """What the brand's app asks for to open the member's privacy centre."""
        r = self.client().post(f"/v1/members/{member_ref}/privacy-link", headers=self.api(self.operator))
        assert r.status_code == 201, r.text
        return r.json()["url"]

    def member(self, member_ref: str = "M-1") -> TestClient:
        """A browser signed in to the privacy centre as ``member_ref`` (through the app's link)."""
        c = self.client()
        assert c.get(self.privacy_link(member_ref)).status_code == 200
        return c

    def staff(self, key: str) -> TestClient:
        """A browser signed in to the console with ``key``."""
        c = self.client()
        assert c.post("/console/sign-in", data={"key": key}).status_code == 303
        return c


def open_site(base: Path, members: tuple[str, ...] = ("M-1", "M-2")) -> Site:
    """A node ``air`` with a partner ``shop``, the test notice published and ``members`` registered."""
    create_alliance(
        base,
        [BrandSpec("air", "Air", Decimal(1), Decimal(0), 9), BrandSpec("shop", "Shop", Decimal(1), Decimal(0), 9)],
    )
    node = Node.open(base / "air")
    site = Site(
        node,
        create_site(node),
        node.staff_keys.issue("chen", Role.COMPLIANCE),
        node.staff_keys.issue("wang", Role.COMPLIANCE),
        node.staff_keys.issue("olga", Role.OPERATOR),
        node.staff_keys.issue("hugo", Role.HOST),
    )
    c = site.client()
    assert c.post("/v1/notices", json=notice_data(), headers=site.api(site.officer)).status_code == 201
    for ref in members:
        assert c.post("/v1/members", json={"member_ref": ref}, headers=site.api(site.operator)).status_code == 201
    return site


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def routes_of(app: FastAPI) -> Iterator[APIRoute]:
    """The app's routes, those of the routers it included too (FastAPI 0.138 keeps them behind the inclusion)."""
    for route in app.routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(getattr(route, "include_context", None), "included_router", None)
        if included is not None:
            yield from (r for r in included.routes if isinstance(r, APIRoute))
