"""The pages in a real browser: Chromium (Debian's package) driven by Playwright against
``alliance-node serve`` on 127.0.0.1, after a small demo. Every page is checked by axe-core (no
serious or critical violation), makes no request to any host but the node, and breaks no rule of
its Content-Security-Policy. Screenshots are kept (``ALLIANCE_UPDATE_SCREENSHOTS=1`` also writes
them to docs/screenshots/).

Skipped, saying why, without Chromium, Playwright or axe-core; ``.ci/run`` installs all three.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from node.core.auth import Role
from node.core.processes import ServerProcess, free_port
from node.core.settings import VKEY_FILE
from node.demo.serving import registered_members
from node.runtime import Node

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("ALLIANCE_ARTIFACTS", ROOT / ".ci" / "artifacts" / "screens"))
DOCS_SHOTS = ROOT / "docs" / "screenshots"
AXE = Path(os.environ.get("ALLIANCE_AXE_JS", ROOT / ".ci" / "npm" / "node_modules" / "axe-core" / "axe.min.js"))


def _chromium() -> str | None:
    return os.environ.get("ALLIANCE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def _why_skip() -> str | None:
    if _chromium() is None:
        return "no Chromium: install Debian's package (apt-get install -y chromium); .ci/run does"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[dev]')"
    if not AXE.exists():
        return f"axe-core is not at {AXE}: npm install --prefix .ci/npm axe-core (.ci/run does)"
    return None


if (reason := _why_skip()) is not None:
    pytest.skip(reason, allow_module_level=True)

from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402


@dataclass
class Served:
    """The demo's airline node behind ``serve``, the staff keys and two members."""

    server: ServerProcess
    data_dir: Path
    keys: dict[str, str]
    members: list[str]
    seen_hosts: set[str] = field(default_factory=set)
    csp_errors: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.base_url

    def privacy_link(self, member: str) -> str:
        r = httpx.post(
            f"{self.url}/v1/members/{member}/privacy-link", headers={"Authorization": f"Bearer {self.keys['olga']}"}
        )
        r.raise_for_status()
        return self.url + r.json()["url"]


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    base = Path(tempfile.mkdtemp(prefix="alliance-browser-"))
    demo = subprocess.run(
        [sys.executable, "-m", "node", "demo", "--exchanges", "20", "--no-federation", "--data-dir", str(base)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    data_dir = base / "airline"
    node = Node.open(data_dir)
    try:
        keys = {
            "chen": node.staff_keys.issue("chen", Role.COMPLIANCE),
            "wang": node.staff_keys.issue("wang", Role.COMPLIANCE),
            "olga": node.staff_keys.issue("olga", Role.OPERATOR),
        }
        members = registered_members(node, "airline", 2)
    finally:
        node.dispose()
    assert len(members) == 2
    server = ServerProcess(data_dir, free_port(), base / "browser-server.log").start()
    try:
        yield Served(server, data_dir, keys, members)
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=_chromium(), headless=True, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser, served: Served) -> Iterator[Page]:
    context = browser.new_context(accept_downloads=True, locale="zh-CN")

    # outside hosts are unreachable: anything but the node is refused, and remembered
    def route(r: Any) -> None:
        host = urlsplit(r.request.url).netloc
        served.seen_hosts.add(host)
        if host != urlsplit(served.url).netloc:
            r.abort()
        else:
            r.continue_()

    context.route("**/*", route)
    p = context.new_page()
    p.on("console", lambda m: served.csp_errors.append(m.text) if "Content Security Policy" in m.text else None)
    yield p
    context.close()


def _check(page: Page, served: Served, name: str) -> None:
    """axe on the page as it stands, no foreign host, no CSP violation; keep a screenshot."""
    page.evaluate(AXE.read_text())  # through the DevTools protocol: the page's CSP does not apply to it
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    bad = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert bad == [], f"{name}: {bad}"
    assert served.seen_hosts <= {urlsplit(served.url).netloc}, served.seen_hosts
    assert served.csp_errors == [], served.csp_errors
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    if os.environ.get("ALLIANCE_UPDATE_SCREENSHOTS"):
        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_SHOTS / f"{name}.png"), full_page=False)


def _enter(page: Page, served: Served, member: str, query: str = "") -> None:
    """Open the member's privacy link as the app would, and wait for the centre it leads to."""
    page.goto(served.privacy_link(member) + query)
    page.wait_for_url(served.url + "/privacy")


def _sign_in(page: Page, served: Served, who: str, then: str = "/console") -> None:
    page.goto(f"{served.url}/console/sign-in?next={then}")
    page.fill("#key", served.keys[who])
    page.click("button[type=submit]")
    page.wait_for_url(f"{served.url}{then}")


def test_landing_and_api_docs_render_with_nothing_from_outside(page: Page, served: Served) -> None:
    page.goto(served.url + "/")
    _check(page, served, "landing")
    page.goto(served.url + "/docs")
    page.wait_for_selector(".swagger-ui .info", timeout=20_000)  # Swagger UI ran, from the package
    assert page.locator("button.authorize").count() == 1  # the Bearer scheme is declared
    _check(page, served, "api-docs")


def test_a_member_grants_and_withdraws_a_purpose_and_sees_the_receipt(page: Page, served: Served) -> None:
    _enter(page, served, served.members[0])
    _check(page, served, "privacy-centre")
    page.click("form:has(input[value='marketing']) button")
    page.wait_for_url("**/privacy/receipts*")
    assert page.locator("#latest").count() == 1
    _check(page, served, "privacy-receipts")
    page.goto(served.url + "/privacy")
    page.click("form:has(input[value='marketing']) button[value='withdraw']")
    page.wait_for_url("**/privacy/receipts*")
    assert "withdraw" in page.locator("#latest").inner_text()


def test_a_member_downloads_their_data(page: Page, served: Served) -> None:
    _enter(page, served, served.members[0])
    page.goto(served.url + "/privacy/data")
    page.click("main form button")
    page.wait_for_url("**/privacy/data/*")
    _check(page, served, "privacy-data")
    with page.expect_download() as download:
        page.click("a[download]")
    assert Path(download.value.path()).read_text().startswith("{")


def test_a_member_reads_the_erasure_page_and_erases(page: Page, served: Served) -> None:
    _enter(page, served, served.members[1], "&lang=en")
    page.goto(served.url + "/privacy/erase")
    _check(page, served, "privacy-erase")
    page.check("#confirm")
    page.click("button.danger")
    assert "Your data is erased" in page.inner_text("main")
    page.goto(served.url + "/privacy")
    assert "Open the privacy centre again" in page.inner_text("main")


def test_an_officer_searches_the_audit_log_and_the_bundle_verifies(page: Page, served: Served, tmp_path: Path) -> None:
    _sign_in(page, served, "chen", "/console/audit")
    page.fill("#f-action", "consent.")
    page.click("form.filters button")
    page.wait_for_selector("table tbody tr")
    _check(page, served, "console-audit")
    with page.expect_download() as download:
        page.click("text=verifiable bundle (JSONL)")
    bundle = tmp_path / "audit.jsonl"
    download.value.save_as(bundle)
    verified = subprocess.run(
        [sys.executable, "-m", "node", "audit", "verify", str(bundle), "--vkey", str(served.data_dir / VKEY_FILE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_the_author_is_refused_approval_and_a_second_officer_approves(page: Page, served: Served) -> None:
    _sign_in(page, served, "chen", "/console/pia")
    example = (ROOT / "compliance" / "data" / "pia_example.toml").read_text()
    page.fill("#pia-id", "pia-browser")
    page.fill("#assessment", example)
    page.click("form[action='/console/pia'] button")
    page.click("button[aria-label='Approve pia-browser']")
    assert "four" in page.inner_text("main").lower()
    _check(page, served, "console-assessments")
    page.click("text=Sign out chen")
    _sign_in(page, served, "wang", "/console/pia")
    page.click("button[aria-label='Approve pia-browser']")
    assert "pia-browser approved" in page.inner_text("main")


@pytest.mark.parametrize(
    "path",
    [
        "/console",
        "/console/requests",
        "/console/features",
        "/console/cross-border",
        "/console/incidents",
        "/console/retention",
        "/console/logs",
        "/console/pia/report",
    ],
)
def test_every_officer_page_passes_axe(page: Page, served: Served, path: str) -> None:
    _sign_in(page, served, "chen", path)
    _check(page, served, "console" + path.removeprefix("/console").replace("/", "-"))


def test_an_operator_sees_the_dashboard_after_a_small_demo(page: Page, served: Served) -> None:
    _sign_in(page, served, "olga", "/console/dashboard")
    assert page.locator("svg.chart").count() == 5
    assert "Exchanges per partner brand" in page.inner_text("main")
    _check(page, served, "console-dashboard")


def test_demo_serve_leaves_the_nodes_running_with_ways_in(
    served: Served, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rich.console import Console

    from node.demo import serving

    def interrupt(_: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(serving, "time", SimpleNamespace(sleep=interrupt))  # Ctrl-C while it waits
    serving.serve_until_interrupted(served.data_dir.parent, ["supermarket"], Console(width=400))
    printed = capsys.readouterr().out
    link = next(line.split()[-1] for line in printed.splitlines() if "privacy centre" in line)
    assert "/console/sign-in" in printed
    assert "operator key    ank_" in printed
    assert link.startswith("http://127.0.0.1:")
    assert "/privacy/enter?token=" in link
    assert "stopping the nodes" in printed


@pytest.mark.parametrize("path", ["/privacy?lang=en", "/privacy/churn", "/privacy/receipts"])
def test_every_member_page_passes_axe(page: Page, served: Served, path: str) -> None:
    _enter(page, served, served.members[0])
    page.goto(served.url + path)
    _check(page, served, "privacy" + path.removeprefix("/privacy").replace("/", "-").replace("?lang=", "-"))


def test_the_pages_met_before_signing_in_pass_axe(page: Page, served: Served) -> None:
    page.goto(served.url + "/privacy/enter?token=expired")
    _check(page, served, "privacy-link-needed")
    page.goto(served.url + "/console/sign-in")
    _check(page, served, "console-sign-in")
