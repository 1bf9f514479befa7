"""The pages' half of the compliance benchmark: each page measured beside the API call it matches.

Issue 17's rule: a page request costs no more than twice the server CPU of the matching API call.
The pages are the member's privacy centre (read, and a consent form) and the officer's rights queue;
each is signed in the way a browser is (a privacy link exchanged for a cookie, an API key for a
console session) before anything is measured. ``benchmarks/compliance.py`` runs these endpoints
interleaved with its own and prints :func:`pages_report`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from benchmarks.httpload import Report, Send

#: (page, the API call it matches): the names of the endpoints below
PAIRS: tuple[tuple[str, str], ...] = (
    ("GET /privacy (member session)", "GET /v1/me/consents (member token)"),
    (
        "POST /privacy/consents (form, member session)",
        "POST /v1/me/consents (grant / withdraw marketing, member token)",
    ),
    ("GET /console/requests (officer session)", "GET /v1/requests (officer key)"),
)
LIMIT = 2.0


@dataclass(frozen=True)
class Browser:
    """What a signed-in browser sends: its session cookie and its forms' CSRF token."""

    cookie: dict[str, str]
    csrf: str


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    if found is None:
        raise RuntimeError("the page has no CSRF token")
    return found.group(1)


def sign_in_members(base_url: str, operator_key: str, refs: Sequence[str]) -> list[Browser]:
    """One privacy-centre session per member, as the brand's app opens them (not timed)."""
    out = []
    with httpx.Client(base_url=base_url, timeout=30.0) as c:
        for ref in refs:
            link = c.post(f"/v1/members/{ref}/privacy-link", headers={"Authorization": f"Bearer {operator_key}"})
            link.raise_for_status()
            entered = c.get(link.json()["url"])
            cookie = {"alliance_privacy": entered.cookies["alliance_privacy"]}
            out.append(Browser(cookie, _csrf(c.get("/privacy", cookies=cookie).text)))
            c.cookies.clear()
    return out


def sign_in_officer(base_url: str, officer_key: str) -> Browser:
    """A console session for the compliance officer (not timed)."""
    with httpx.Client(base_url=base_url, timeout=30.0) as c:
        r = c.post("/console/sign-in", data={"key": officer_key})
        cookie = {"alliance_console": r.cookies["alliance_console"]}
        return Browser(cookie, _csrf(c.get("/console", cookies=cookie).text))


def page_endpoints(
    members: list[Browser], officer: Browser, tokens: list[str], officer_key: str
) -> list[tuple[str, Send, int, bool]]:
    """The pages and the API calls of :data:`PAIRS` that the compliance benchmark does not already send:
    (name, how to send request ``i``, the status it answers, whether it appends an audit event)."""
    member_headers = [{"Authorization": f"Bearer {t}"} for t in tokens]
    officer_headers = {"Authorization": f"Bearer {officer_key}"}

    def my_consents(c: httpx.Client, i: int) -> httpx.Response:
        return c.get("/v1/me/consents", headers=member_headers[i % len(member_headers)])

    def privacy_home(c: httpx.Client, i: int) -> httpx.Response:
        return c.get("/privacy", cookies=members[i % len(members)].cookie)

    def consent_form(c: httpx.Client, i: int) -> httpx.Response:
        turn, k = divmod(i, len(members))
        b = members[k]
        form = {"csrf": b.csrf, "purpose": "marketing", "action": "withdraw" if turn % 2 else "grant"}
        r = c.post("/privacy/consents", data=form, cookies=b.cookie)
        if r.headers.get("location") != "/privacy/receipts#latest":  # refused: its message waits on the page
            raise RuntimeError(f"the consent form was not carried out: {r.status_code} {r.headers.get('location')}")
        return r

    def queue_page(c: httpx.Client, i: int) -> httpx.Response:
        return c.get("/console/requests", cookies=officer.cookie)

    def queue_api(c: httpx.Client, i: int) -> httpx.Response:
        return c.get("/v1/requests", headers=officer_headers)

    return [
        (PAIRS[0][1], my_consents, 200, False),
        (PAIRS[0][0], privacy_home, 200, False),
        (PAIRS[1][0], consent_form, 303, True),
        (PAIRS[2][1], queue_api, 200, False),
        (PAIRS[2][0], queue_page, 200, False),
    ]


def pages_report(eps: Sequence[Any]) -> Report:
    """Each page's server CPU per request against its API call's, and whether it keeps within 2x."""
    by_name = {ep.name: ep for ep in eps}
    report = Report(
        "Pages against the API calls they match (server CPU per request; the goal: at most 2x)",
        ["page", "API call", "page CPU ms/req", "API CPU ms/req", "ratio", "within 2x"],
    )
    for page, api in PAIRS:
        p, a = by_name[page], by_name[api]
        if p.server_cpu is None or a.server_cpu is None:
            report.rows.append([page, api, "—", "—", "—", "—"])
            continue
        pc, ac = p.server_cpu / p.count, a.server_cpu / a.count
        report.rows.append(
            [page, api, f"{pc * 1e3:.2f}", f"{ac * 1e3:.2f}", f"{pc / ac:.2f}", "yes" if pc <= LIMIT * ac else "NO"]
        )
    return report
