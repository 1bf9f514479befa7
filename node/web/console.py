"""The compliance console (``/console``): staff sign in with their API key, then search and export the
audit trail and work the rights-request queue. Assessments, switches and the rest are in
:mod:`node.web.governance`; the operator's dashboard in :mod:`node.web.dashboard`.

Each page admits the roles the matching API route admits (``node.api.routes``): the audit trail is
the compliance officer's, and so is the queue.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from pydantic import ValidationError

from compliance.audit import AuditEvent, AuditFilter
from node.api.ratelimits import credential_key
from node.core.auth import AuthError
from node.web.guard import (
    STAFF_COOKIE,
    NodeDep,
    OfficerForm,
    OfficerPage,
    WatcherPage,
    check_form,
    check_origin,
    clear_session_cookie,
    read_form,
    sessions_of,
    set_session_cookie,
)
from node.web.render import back, page
from node.web.sessions import Session

router = APIRouter(prefix="/console", include_in_schema=False)
FILTERS = ("from", "to", "action", "purpose", "member", "recipient")
SHOWN = 200  # newest matching events shown on the page; the downloads hold them all


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_page(request: Request, next: str = "/console") -> HTMLResponse:
    """The staff sign-in form."""
    return page(request, "console/sign_in.html", next=_local(next))


def _local(path: str) -> str:
    """Only a path of the console itself is a place to go after signing in (no open redirect)."""
    return path if path.startswith("/console") and "//" not in path and "\\" not in path else "/console"


@router.post("/sign-in", response_model=None)
async def sign_in(request: Request, node: NodeDep) -> Response:
    """Check the API key; a staff session replaces it from here on."""
    form = await read_form(request)
    check_origin(request, allow_opaque=False)  # no session yet, so no CSRF token: the Origin guards it
    key = form.get("key", "").strip()
    failures = request.app.state.limiters.failed_auth
    if wait := failures.wait(credential_key(key)):
        return page(request, "console/sign_in.html", status_code=429, next="/console", error=f"wait {int(wait) + 1} s")
    try:
        caller = node.staff_keys.check(key)
    except AuthError:
        failures.take(credential_key(key))
        return page(
            request,
            "console/sign_in.html",
            status_code=401,
            next=_local(form.get("next", "")),
            error="this key is not a valid staff key of this node",
        )
    session = sessions_of(request).open(caller)
    response = RedirectResponse(_local(form.get("next", "/console")), status_code=303)
    set_session_cookie(request, response, STAFF_COOKIE, session)
    return response


@router.post("/sign-out", response_model=None)
async def sign_out(request: Request, session: WatcherPage) -> Response:
    """End the session."""
    check_form(request, session, await read_form(request))
    sessions_of(request).end(session.id)
    response = RedirectResponse("/console/sign-in", status_code=303)
    clear_session_cookie(response, STAFF_COOKIE)
    return response


@router.get("", response_class=HTMLResponse)
def home(request: Request, node: NodeDep, session: WatcherPage) -> HTMLResponse:
    """What this person can do here, by role."""
    return page(request, "console/home.html", session, brand=node.settings.display_name or node.settings.node_id)


def _filter(node: NodeDep, criteria: dict[str, str]) -> AuditFilter:
    """The filter of ``audit export`` from the form's fields (a member by reference, as the API takes it)."""
    member = criteria.get("member")
    return AuditFilter(
        from_ts=_when(criteria.get("from")),
        to_ts=_when(criteria.get("to")),
        action=criteria.get("action"),
        purpose=criteria.get("purpose"),
        subject=node.consent.member_pseudonym(member) if member else None,
        recipient=criteria.get("recipient"),
    )


def _when(value: str | None) -> datetime | None:
    """A day (``2026-12-01``) or a time; without a zone, UTC (as ``audit export`` reads them)."""
    if not value:
        return None
    when = datetime.fromisoformat(value)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _criteria(request: Request) -> dict[str, str]:
    return {k: v for k in FILTERS if (v := request.query_params.get(k, "").strip())}


def _matching(node: NodeDep, flt: AuditFilter, keep: int | None) -> list[tuple[int, AuditEvent]]:
    """The events ``flt`` selects, oldest first (the newest ``keep`` of them), as ``audit export`` finds them."""
    return node.audit.select(flt, keep)


def _bad_filter(session: Session, exc: Exception) -> None:
    if isinstance(exc, ValidationError):
        session.say("bad filter: " + exc.errors()[0]["msg"].removeprefix("Value error, "))
    else:
        session.say(f"bad filter: {exc}")


@router.get("/audit", response_class=HTMLResponse)
def audit(request: Request, node: NodeDep, session: OfficerPage) -> HTMLResponse:
    """Search the audit trail with the filters of ``audit export``; download what it finds."""
    criteria = _criteria(request)
    rows: list[tuple[int, AuditEvent]] | None = None
    if criteria:
        try:
            flt = _filter(node, criteria)
            rows = list(reversed(_matching(node, flt, SHOWN)))
        except (ValidationError, ValueError, LookupError) as exc:
            _bad_filter(session, exc)
        else:  # who looked at whom is part of the trail, as for a download
            _audit_export(node, flt, len(rows), "page")
    query = urlencode(criteria)
    return page(request, "console/audit.html", session, criteria=criteria, rows=rows, query=query, shown=SHOWN)


def _bundle_filter(request: Request, node: NodeDep, session: Session) -> AuditFilter | None:
    try:
        return _filter(node, _criteria(request))
    except (ValidationError, ValueError, LookupError) as exc:
        _bad_filter(session, exc)
        return None


@router.get("/audit/bundle.jsonl", response_model=None)
def bundle(request: Request, node: NodeDep, session: OfficerPage) -> Response:
    """The verifiable bundle (``alliance-node audit verify``) of what the filter selects; audited."""
    flt = _bundle_filter(request, node, session)
    if flt is None:
        return back("/console/audit")
    spool = tempfile.SpooledTemporaryFile(max_size=16 << 20)  # noqa: SIM115 - handed to the response
    manifest = node.audit.export(flt, spool)
    spool.seek(0)
    headers = {"Content-Disposition": f'attachment; filename="audit-{manifest.tree_size}.bundle.jsonl"'}
    return StreamingResponse(spool, media_type="application/x-ndjson", headers=headers)


def _audit_export(node: NodeDep, flt: AuditFilter, count: int, shape: str) -> None:
    """Record that staff saw or took ``count`` events of the trail (as ``audit export`` records itself)."""
    details: dict[str, Any] = {f"filter.{k}": v for k, v in flt.to_dict().items()} | {"format": shape}
    node.audit(
        "audit.export", subject_pseudo_ids=[flt.subject] if flt.subject else [], record_count=count, details=details
    )


@router.get("/audit/events.csv", response_model=None)
def events_csv(request: Request, node: NodeDep, session: OfficerPage) -> Response:
    """The same events as a spreadsheet (not verifiable: the bundle is); the export is audited."""
    flt = _bundle_filter(request, node, session)
    if flt is None:
        return back("/console/audit")
    rows = _matching(node, flt, None)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["index", "ts", "action", "actor", "purpose", "legal_basis", "subjects", "recipient", "details"])
    for index, e in rows:
        writer.writerow(
            [
                index,
                e.ts_utc.isoformat(),
                e.action,
                f"{e.actor.type}:{e.actor.id}",
                e.purpose_code or "",
                e.legal_basis or "",
                " ".join(e.subject_pseudo_ids),
                e.recipient.id if e.recipient else "",
                json.dumps(e.details, ensure_ascii=False, sort_keys=True),
            ]
        )
    _audit_export(node, flt, len(rows), "csv")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    headers = {"Content-Disposition": f'attachment; filename="audit-{stamp}.csv"'}
    return Response("\ufeff" + out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


@router.get("/requests", response_class=HTMLResponse)
def requests_queue(request: Request, node: NodeDep, session: OfficerPage) -> HTMLResponse:
    """Open rights requests, earliest deadline first, the late ones flagged."""
    today = datetime.now(UTC).date()
    queue = [(r, r.overdue(today)) for r in node.rights.queue()]
    return page(request, "console/requests.html", session, queue=queue, overdue=sum(o for _, o in queue))


@router.post("/requests/escalate", response_model=None)
def escalate(node: NodeDep, session: OfficerPage, form: OfficerForm) -> Response:
    """What ``rights escalate`` does: every overdue request escalated (audited)."""
    escalated = node.rights.escalate()
    session.say(f"{len(escalated)} overdue request(s) escalated", alert=False)
    return back("/console/requests")
