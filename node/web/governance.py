"""Console pages for governance: impact assessments (four eyes), feature switches, cross-border
counters and mechanisms, incidents, retention holds, and the node's logs with their checkpoints.

Roles as in the API: any staff lists and submits assessments and sees switches and logs; only a
compliance officer approves (never their own) and reads the report; only an operator switches. An
entrusted host sees the switches and the logs' heads, nothing else here.
"""

from __future__ import annotations

import json
import logging
import re
import tomllib
from datetime import UTC, datetime
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from pydantic import ValidationError

from compliance.audit import AuditFilter
from compliance.pia import Assessment, Feature, utcnow
from compliance.pia_report import document, to_markdown
from node.chain.anchoring import from_settings
from node.runtime_facts import gather
from node.web.guard import NodeDep, OfficerForm, OfficerPage, OperatorForm, StaffForm, StaffPage, WatcherPage
from node.web.render import FAILED, attempt, back, language, page

router = APIRouter(prefix="/console", include_in_schema=False)
log = logging.getLogger("alliance.node")
MAX_INCIDENTS = 100
PIA_ID = re.compile(r"[A-Za-z0-9._:-]{1,80}")  # as the API's Submission takes it


@router.get("/pia", response_class=HTMLResponse)
def pias(request: Request, node: NodeDep, session: StaffPage) -> HTMLResponse:
    """Every assessment with its state, and the form to submit one."""
    now = utcnow()
    rows = [(r, r.status(now).value) for r in node.pia.all()]
    return page(request, "console/pia.html", session, rows=rows)


def _assessment(text: str) -> Assessment:
    """An assessment pasted as TOML (like ``compliance/data/pia_example.toml``) or JSON."""
    stripped = text.strip()
    data = json.loads(stripped) if stripped.startswith("{") else tomllib.loads(stripped)
    return Assessment.model_validate(data)


@router.post("/pia", response_model=None)
def submit(node: NodeDep, session: StaffPage, form: StaffForm) -> Response:
    """Submit an assessment as a draft: another compliance officer approves it."""
    pia_id = form.get("id") or None
    if pia_id is not None and not PIA_ID.fullmatch(pia_id):
        session.say("an assessment id is 1 to 80 letters, digits and . _ : -")
        return back("/console/pia")
    try:
        assessment = _assessment(form.get("assessment", ""))
    except (ValueError, ValidationError, RecursionError) as exc:  # TOML, JSON and field errors are ValueErrors
        session.say(f"the assessment could not be read: {(str(exc).splitlines() or [''])[0][:300]}")
        return back("/console/pia")
    record = attempt(session, node.pia.submit, assessment, session.caller.id, pia_id)
    if record is not FAILED:
        session.say(f"{record.pia_id} submitted as a draft", alert=False)
    return back("/console/pia")


@router.post("/pia/{pia_id}/approval", response_model=None)
def approve(node: NodeDep, session: OfficerPage, form: OfficerForm, pia_id: str) -> Response:
    """Approve an assessment: refused to its author (four eyes) and once approved."""
    if attempt(session, node.pia.approve, pia_id, session.caller.id) is not FAILED:
        session.say(f"{pia_id} approved", alert=False)
    return back("/console/pia")


@router.get("/pia/report", response_class=HTMLResponse)
def report(request: Request, node: NodeDep, session: OfficerPage) -> HTMLResponse:
    """The assessment report from the live node, readable here and as Markdown."""
    report = to_markdown(document(gather(node), language(request)))  # Chinese unless ?lang=en
    return page(request, "console/report.html", session, markdown=report)


@router.get("/pia/report.md", response_class=PlainTextResponse)
def report_markdown(request: Request, node: NodeDep, session: OfficerPage) -> PlainTextResponse:
    """The report as a Markdown file."""
    headers = {"Content-Disposition": 'attachment; filename="impact-assessment-report.md"'}
    text = to_markdown(document(gather(node), language(request)))
    return PlainTextResponse(text, media_type="text/markdown", headers=headers)


@router.get("/features", response_class=HTMLResponse)
def features(request: Request, node: NodeDep, session: WatcherPage) -> HTMLResponse:
    """Each feature switch as it takes effect now; an operator switches them under an approved assessment."""
    switches = [(f.value, on, pia_id, why) for f, (on, pia_id, why) in node.pia.switches().items()]
    approved = [r.pia_id for r in node.pia.all() if r.status(utcnow()).value == "approved"]
    return page(request, "console/features.html", session, switches=switches, approved=approved)


@router.post("/features/{feature}", response_model=None)
def switch(node: NodeDep, session: StaffPage, form: OperatorForm, feature: Feature) -> Response:
    """Switch a feature on (under an approved assessment) or off."""
    if form.get("enabled") == "true":
        pia_id = form.get("pia_id", "")
        if not PIA_ID.fullmatch(pia_id):
            session.say("choose an approved assessment to switch the feature on under")
            return back("/console/features")
        attempt(session, node.pia.enable, feature, pia_id, session.caller.id)
    else:
        attempt(session, node.pia.disable, feature, session.caller.id)
    return back("/console/features")


@router.get("/cross-border", response_class=HTMLResponse)
def cross_border(request: Request, node: NodeDep, session: OfficerPage) -> HTMLResponse:
    """Individuals sent abroad this year, the mechanism that requires, and the mechanisms recorded."""
    year = datetime.now(UTC).year
    general, sensitive = node.xborder.counts(year)
    return page(
        request,
        "console/cross_border.html",
        session,
        year=year,
        general=general,
        sensitive=sensitive,
        required=node.xborder.required(year),
        mechanisms=node.mechanisms.all(),
    )


@router.get("/incidents", response_class=HTMLResponse)
def incidents(request: Request, node: NodeDep, session: OfficerPage) -> HTMLResponse:
    """Incidents detected and notified, from the audit trail (``alliance-node incident notify`` records them)."""
    found = node.audit.select(AuditFilter(action="incident."), MAX_INCIDENTS)
    return page(request, "console/incidents.html", session, events=list(reversed(found)))


@router.get("/retention", response_class=HTMLResponse)
def retention(request: Request, node: NodeDep, session: OfficerPage) -> HTMLResponse:
    """Members under legal hold (by pseudonym), and the forms to place and release holds."""
    return page(request, "console/retention.html", session, held=sorted(node.retention.held()))


def _target(node: NodeDep, form: dict[str, str]) -> str:
    member, pseudonym = form.get("member", "").strip(), form.get("pseudonym", "").strip()
    if bool(member) == bool(pseudonym):
        raise ValueError("name the member by reference or by pseudonym (one of them)")
    return node.consent.member_pseudonym(member) if member else pseudonym


@router.post("/retention/hold", response_model=None)
def hold(node: NodeDep, session: OfficerPage, form: OfficerForm) -> Response:
    """Place a legal hold: nothing about the member is purged or erased until it is released."""
    reason = form.get("reason", "").strip()
    if not reason:
        session.say("a hold needs the case or order it serves")
        return back("/console/retention")
    target = attempt(session, _target, node, form)
    if target is not FAILED and attempt(session, node.retention.hold, target, reason, session.caller.id) is not FAILED:
        session.say(f"hold placed on {target}", alert=False)
    return back("/console/retention")


@router.post("/retention/release", response_model=None)
def release(node: NodeDep, session: OfficerPage, form: OfficerForm) -> Response:
    """Release the legal holds on a member."""
    target = attempt(session, _target, node, form)
    if target is not FAILED:
        released = node.retention.release(target, session.caller.id)
        session.say(f"holds on {target} released" if released else f"no active hold on {target}", alert=not released)
    return back("/console/retention")


@router.get("/logs", response_class=HTMLResponse)
def logs(request: Request, node: NodeDep, session: WatcherPage) -> HTMLResponse:
    """Each log's size and root, its latest signed checkpoint with cosignatures, and the anchoring state."""
    rows = []
    for name in node.store.log_names():
        log = node.store.log(name)
        head = log.head()
        rows.append(
            {
                "name": name,
                "origin": log.origin,
                "size": head.size,
                "root": head.root_hash.hex(),
                "checkpoint": log.latest_checkpoint(),
            }
        )
    return page(request, "console/logs.html", session, logs=rows, anchoring=_anchoring(node))


def _anchoring(node: NodeDep) -> dict[str, object] | None:
    """Where the logs are anchored and each one's anchored size, read from the chain (None: off)."""
    s = node.settings
    if not s.chain_rpc_url:
        return None
    rpc = urlsplit(s.chain_rpc_url)  # the scheme and host only: a provider's URL often holds its API key
    state: dict[str, object] = {
        "rpc": f"{rpc.scheme}://{rpc.hostname}",
        "contract": s.chain_anchor_address,
        "sizes": {},
    }
    try:
        anchorer = from_settings(s, node.store)
        state["sizes"] = anchorer.anchored() if anchorer else {}
    # a status page must render when the chain does not answer (web3 raises many kinds for that)
    except Exception as exc:
        log.warning("anchoring state unavailable: %s", type(exc).__name__)
        state["error"] = f"the chain did not answer: {type(exc).__name__}"
    return state
