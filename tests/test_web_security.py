"""What every page promises a browser: a strict CSP with no inline script, no framing, nothing from
another host, sessions that end, and API docs that work offline with a declared Bearer scheme."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from web_fixtures import Site, open_site

from node.core.auth import Caller, Role
from node.web.sessions import SessionStore
from node.web.site import create_site

TEMPLATES = Path(str(files("node.web").joinpath("templates")))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    s = open_site(tmp_path_factory.mktemp("web-security"))
    yield s
    s.node.dispose()


@pytest.mark.parametrize("path", ["/", "/docs", "/privacy", "/console/sign-in", "/static/site.css"])
def test_every_page_forbids_inline_scripts_foreign_hosts_and_framing(site: Site, path: str) -> None:
    r = site.client().get(path)
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "'unsafe-inline'" not in csp
    assert "frame-ancestors 'none'" in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"


def test_the_json_api_keeps_its_own_headers(site: Site) -> None:
    assert "content-security-policy" not in site.client().get("/v1/logs").headers


@pytest.mark.parametrize("template", sorted(TEMPLATES.rglob("*.html")), ids=lambda p: p.name)
def test_no_template_has_an_inline_script_style_or_handler(template: Path) -> None:
    text = template.read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", text), "inline <script>"
    assert not re.search(r"\sstyle=|<style", text), "inline style (the CSP refuses it)"
    assert not re.search(r"\son[a-z]+=", text), "inline event handler"


@pytest.mark.parametrize("template", sorted(TEMPLATES.rglob("*.html")), ids=lambda p: p.name)
def test_no_template_loads_anything_from_another_host(template: Path) -> None:
    assert not re.search(r"(src|href)=\"(https?:)?//", template.read_text())


def test_the_api_docs_are_served_from_the_package(site: Site) -> None:
    c = site.client()
    page = c.get("/docs").text
    scripts = re.findall(r'<script src="([^"]+)"', page)
    assert scripts
    assert all(s.startswith("/static/") for s in scripts)
    assert all(c.get(s).status_code == 200 for s in scripts)


def test_the_openapi_document_declares_the_bearer_scheme_where_credentials_are_needed(site: Site) -> None:
    doc = site.client().get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "A staff API key (ank_...) or a member token the operator issued.",
    }
    assert doc["paths"]["/v1/me/consents"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in doc["paths"]["/health"]["get"]


def test_the_landing_page_links_the_three_areas_and_the_docs(site: Site) -> None:
    page = site.client().get("/").text
    assert all(f'href="{p}"' in page for p in ("/privacy", "/console", "/console/dashboard", "/docs"))


def test_a_session_ends_when_its_time_is_up() -> None:
    now = [1000.0]
    store = SessionStore(ttl_seconds=60, clock=lambda: now[0])
    session = store.open(Caller(Role.COMPLIANCE, "chen"))
    now[0] += 59
    assert store.find(session.id) is session
    now[0] += 2
    assert store.find(session.id) is None


def test_an_ended_session_is_forgotten() -> None:
    store = SessionStore(ttl_seconds=60)
    session = store.open(Caller(Role.OPERATOR, "olga"))
    store.end(session.id)
    assert store.find(session.id) is None


def test_a_privacy_links_token_is_no_api_token(site: Site) -> None:
    token = site.privacy_link("M-1").split("token=")[1]
    r = site.client().get("/v1/me/consents", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401


def test_an_api_token_opens_no_privacy_centre(site: Site) -> None:
    token = site.node.member_tokens.issue("M-1")
    assert site.client().get(f"/privacy/enter?token={token}").status_code == 401


def test_a_used_link_stays_used_after_a_restart(site: Site) -> None:
    link = site.privacy_link("M-2")
    assert site.client().get(link).status_code == 200
    restarted = TestClient(create_site(site.node), follow_redirects=False)  # sessions are gone, used links not
    assert restarted.get(link).status_code == 401


def test_revoking_a_staff_key_ends_its_console_session(tmp_path: Path) -> None:
    s = open_site(tmp_path)
    key = s.node.staff_keys.issue("ruth", Role.COMPLIANCE)
    c = s.staff(key)
    assert c.get("/console").status_code == 200
    s.node.staff_keys.revoke(key.split("_")[1])
    assert c.get("/console").status_code == 303
    s.node.dispose()


def test_a_csrf_field_that_is_not_ascii_is_refused_not_a_500(site: Site) -> None:
    c = site.member("M-1")
    assert c.post("/privacy/consents", data={"csrf": "é", "purpose": "marketing", "action": "grant"}).status_code == 403


def test_a_sign_in_from_a_page_with_no_origin_is_refused(site: Site) -> None:
    r = site.client().post("/console/sign-in", data={"key": site.officer}, headers={"Origin": "null"})
    assert r.status_code == 403


def test_the_access_log_never_shows_a_privacy_links_token(site: Site) -> None:
    from node.ops.logsetup import configure_logging

    stream = io.StringIO()
    handler = configure_logging("text", "INFO", stream)
    try:
        TestClient(site.app, follow_redirects=False).get("/privacy/enter?token=eyJh.c2ln&lang=en")
    finally:
        logging.getLogger().removeHandler(handler)
    assert "GET /privacy/enter" in stream.getvalue()
    assert "eyJh" not in stream.getvalue()


def test_the_session_cookie_is_secure_under_tls(site: Site) -> None:
    c = TestClient(site.app, base_url="https://testserver", follow_redirects=False)
    r = c.post("/console/sign-in", data={"key": site.officer})
    assert "Secure" in r.headers["set-cookie"]
