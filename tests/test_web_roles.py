"""Every page with every role, as tests/test_roles.py does for the API: nobody reaches what they must not.

A member's session opens only the privacy centre and only their own records; staff sessions only
the console, with the API's split between operators and compliance officers; an entrusted host's
session only the console's home, switches and logs' heads.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from web_fixtures import Site, csrf_of, open_site, routes_of

PUBLIC, MEMBER, OPERATOR, COMPLIANCE, HOST = "public", "member", "operator", "compliance", "host"
STAFF = {OPERATOR, COMPLIANCE}
WATCHERS = STAFF | {HOST}  # pages without identifiers, sealed fields or members' data
EVERYONE = {PUBLIC, MEMBER, OPERATOR, COMPLIANCE, HOST}

# (method, path, who may open it); the sign-in pages themselves are for everyone
PAGES: list[tuple[str, str, set[str]]] = [
    ("GET", "/", EVERYONE),
    ("GET", "/docs", EVERYONE),
    ("GET", "/privacy/enter", EVERYONE),
    ("GET", "/console/sign-in", EVERYONE),
    ("POST", "/console/sign-in", EVERYONE),
    ("GET", "/privacy", {MEMBER}),
    ("POST", "/privacy/consents", {MEMBER}),
    ("GET", "/privacy/receipts", {MEMBER}),
    ("GET", "/privacy/receipts/1.txt", {MEMBER}),
    ("POST", "/privacy/receipts/check", {MEMBER}),
    ("GET", "/privacy/data", {MEMBER}),
    ("POST", "/privacy/data", {MEMBER}),
    ("GET", "/privacy/data/dsr-1", {MEMBER}),
    ("POST", "/privacy/corrections", {MEMBER}),
    ("POST", "/privacy/phone", {MEMBER}),
    ("GET", "/privacy/churn", {MEMBER}),
    ("GET", "/privacy/erase", {MEMBER}),
    ("POST", "/privacy/erase", {MEMBER}),
    ("POST", "/privacy/sign-out", {MEMBER}),
    ("GET", "/console", WATCHERS),
    ("POST", "/console/sign-out", WATCHERS),
    ("GET", "/console/audit", {COMPLIANCE}),
    ("GET", "/console/audit/bundle.jsonl", {COMPLIANCE}),
    ("GET", "/console/audit/events.csv", {COMPLIANCE}),
    ("GET", "/console/requests", {COMPLIANCE}),
    ("POST", "/console/requests/escalate", {COMPLIANCE}),
    ("GET", "/console/pia", STAFF),
    ("POST", "/console/pia", STAFF),
    ("POST", "/console/pia/pia-1/approval", {COMPLIANCE}),
    ("GET", "/console/pia/report", {COMPLIANCE}),
    ("GET", "/console/pia/report.md", {COMPLIANCE}),
    ("GET", "/console/features", WATCHERS),
    ("POST", "/console/features/personalization", {OPERATOR}),
    ("GET", "/console/cross-border", {COMPLIANCE}),
    ("GET", "/console/incidents", {COMPLIANCE}),
    ("GET", "/console/retention", {COMPLIANCE}),
    ("POST", "/console/retention/hold", {COMPLIANCE}),
    ("POST", "/console/retention/release", {COMPLIANCE}),
    ("GET", "/console/logs", WATCHERS),
    ("GET", "/console/dashboard", {OPERATOR}),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    s = open_site(tmp_path_factory.mktemp("web-roles"))
    yield s
    s.node.dispose()


@pytest.fixture(scope="module")
def browsers(site: Site) -> dict[str, TestClient]:
    return {
        PUBLIC: site.client(),
        MEMBER: site.member("M-1"),
        OPERATOR: site.staff(site.operator),
        COMPLIANCE: site.staff(site.officer),
        HOST: site.staff(site.host),
    }


def _refusals() -> list[object]:
    return [
        pytest.param(method, path, role, id=f"{role}-{method} {path}")
        for method, path, allowed in PAGES
        for role in sorted(EVERYONE - allowed)
    ]


def _refused(status: int, location: str, path: str, role: str) -> bool:
    if path.startswith("/privacy"):
        return status == 401  # the centre asks for the app's link again
    if role in WATCHERS:
        return status == 403  # signed in, but not for this page
    return status == 303 and location.startswith("/console/sign-in")


@pytest.mark.parametrize(("method", "path", "role"), _refusals())
def test_each_role_is_refused_every_page_not_meant_for_it(
    browsers: dict[str, TestClient], method: str, path: str, role: str
) -> None:
    c = browsers[role]
    data = {"csrf": _any_csrf(c)} if method == "POST" else None
    r = c.request(method, path, data=data)
    assert _refused(r.status_code, r.headers.get("location", ""), path, role), (r.status_code, r.text[:300])


def _any_csrf(c: TestClient) -> str:
    """The browser's own CSRF token, if it has a session (a refusal must not hang on a missing token)."""
    for page in ("/privacy", "/console"):
        r = c.get(page)
        if r.status_code == 200 and 'name="csrf"' in r.text:
            return csrf_of(r.text)
    return "none"


@pytest.mark.parametrize(
    ("path", "role"),
    [
        pytest.param(path, role, id=f"{role}-{path}")
        for method, path, allowed in PAGES
        if method == "GET" and allowed != EVERYONE and not path.endswith((".txt", "dsr-1"))
        for role in sorted(allowed)
    ],
)
def test_each_role_opens_every_page_meant_for_it(browsers: dict[str, TestClient], path: str, role: str) -> None:
    r = browsers[role].get(path)
    assert r.status_code == 200, (r.status_code, r.text[:300])


def test_the_walk_covers_every_page_of_the_site(site: Site) -> None:
    pages = {
        (method, route.path) for route in routes_of(site.app) if not route.include_in_schema for method in route.methods
    }
    assert ("GET", "/console") in pages  # the site's own routes were found
    walked = {
        (
            m,
            p.replace("pia-1", "{pia_id}")
            .replace("personalization", "{feature}")
            .replace("1.txt", "{n}.txt")
            .replace("dsr-1", "{request_id}"),
        )
        for m, p, _ in PAGES
    }
    assert sorted(pages - walked) == []
