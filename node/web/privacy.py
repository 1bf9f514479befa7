"""The member's privacy centre (``/privacy``): choices per purpose and per partner brand, receipts, their
data, corrections, the phone number, rights requests, the churn-risk explanation and erasure.

The brand's app opens it with a link holding a five-minute token made for that use only
(``POST /v1/members/{ref}/privacy-link``): the API refuses it, and the centre takes it once (kept
as used in the database) in exchange for a session cookie. Every action calls the service the API
calls, under the same per-member budget.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from compliance.consent import ConsentAction
from compliance.purposes import PurposeError, catalogue
from compliance.receipts import ReceiptError, verify_receipt
from node.api.routes.members import PRIVACY_LINK, PRIVACY_LINK_TTL
from node.core.auth import AuthError
from node.peers.nonces import PeerNonces
from node.web.guard import (
    MEMBER_COOKIE,
    MemberForm,
    MemberPage,
    NodeDep,
    clear_session_cookie,
    sessions_of,
    set_session_cookie,
)
from node.web.messages import text
from node.web.render import FAILED, attempt, back, language, page
from node.web.sessions import Session

router = APIRouter(prefix="/privacy", include_in_schema=False)
HOME = "/privacy"
LINK_NONCES = "privacy-link"  # the "peer" under which used links are kept with the peer calls' nonces


def _title(code: str, lang: str, brands: dict[str, str]) -> str:
    purpose = catalogue().purpose(code)
    title = purpose.title_zh if lang == "zh-CN" else purpose.title
    return f"{title}: {brands.get(purpose.parameter, purpose.parameter)}" if purpose.parameter else title


def _choices(node: NodeDep, session: Session, lang: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The member's optional purposes, general ones first, then one row per partner brand and purpose."""
    own = node.settings.node_id
    brands = {b.node_id: b.name for b in node.registry.brands} if node.registry.exists() else {}
    partners = [b for b in brands if b != own]
    notice = node.consent.current_notice_or_none()
    general, per_partner = [], []
    for code, decision in node.consent.decisions(session.caller.id, recipients=partners).items():
        purpose = catalogue().purpose(code)
        terms = notice.purposes.get(purpose.family if purpose.parameter else code) if notice else None
        row = {
            "code": code,
            "title": _title(code, lang, brands),
            "explanation": terms.description if terms else "",
            "allowed": decision.allowed,
            "reason": decision.reason.value,
            "brand": brands.get(purpose.parameter or "", purpose.parameter),
        }
        (per_partner if purpose.parameter in brands else general).append(row)
    return general, per_partner


@router.get("/enter", response_class=HTMLResponse)
def enter(request: Request, node: NodeDep, token: str = "") -> Response:
    """Exchange the app's link (a member token) for a session cookie, once; then on to the centre."""
    lang = language(request)
    try:
        caller = node.member_tokens.check(token, use=PRIVACY_LINK)  # a link's token, never an API token
    except AuthError:
        return page(request, "privacy/link_needed.html", status_code=401, lang=lang)
    # used once, remembered in the database past the token's life: a restart does not revive a link
    used = PeerNonces(node.store.engine, window=timedelta(seconds=2 * PRIVACY_LINK_TTL))
    if used.seen(LINK_NONCES, hashlib.sha256(token.encode()).hexdigest(), datetime.now(UTC)):
        return page(request, "privacy/link_needed.html", status_code=401, lang=lang)
    session = sessions_of(request).open(caller)
    # a page, not a redirect: a SameSite=Strict cookie set during a cross-site navigation (the app's link)
    # is sent by the next request only if that request starts on this site
    response = page(request, "privacy/entered.html", session, lang=lang)
    set_session_cookie(request, response, MEMBER_COOKIE, session)
    return response


@router.get("", response_class=HTMLResponse)
def home(request: Request, node: NodeDep, session: MemberPage) -> HTMLResponse:
    """The member's choices, partner brands, phone number and rights requests."""
    lang = language(request)
    general, per_partner = _choices(node, session, lang)
    record = node.consent.store.member(session.caller.id)
    return page(
        request,
        "privacy/home.html",
        session,
        lang=lang,
        general=general,
        partners=per_partner,
        phone=record.phone if record else None,
        requests=node.rights.requests(session.caller.id),
        brand=node.settings.display_name or node.settings.node_id,
    )


def _budget(request: Request, session: Session) -> bool:
    """Take one audited action from the member's budget; ``False`` (and a message) when it is spent."""
    wait = request.app.state.limiters.member_writes.take(session.caller.id)
    if wait:
        session.say(f"too many changes: try again in {int(wait) + 1} s")
    return not wait


@router.post("/consents")
def change(request: Request, node: NodeDep, session: MemberPage, form: MemberForm) -> RedirectResponse:
    """Grant, withdraw or renew one purpose; the signed receipt is shown next."""
    action = form.get("action", "")
    if action not in {a.value for a in ConsentAction} or not _budget(request, session):
        return back(HOME)
    try:
        catalogue().purpose(form.get("purpose", ""))
    except PurposeError as exc:
        session.say(str(exc))
        return back(HOME)
    receipt = attempt(session, node.consent_changes.change, session.caller.id, [form["purpose"]], ConsentAction(action))
    if receipt is FAILED:
        return back(HOME)
    session.say(language_text(request, "receipt_issued"), language(request), alert=False)
    return back(f"{HOME}/receipts#latest")


def language_text(request: Request, key: str) -> str:
    """A message in the reader's language (for the next page)."""
    return text(language(request), key)


def _receipts(node: NodeDep, session: Session) -> list[str]:
    member = node.keyring.pseudonym(session.caller.id, create=False)
    return node.consent.store.receipts(member)


@router.get("/receipts", response_class=HTMLResponse)
def receipts(request: Request, node: NodeDep, session: MemberPage) -> HTMLResponse:
    """Every receipt, newest first, readable and downloadable, and how to check one."""
    verifier = node.signer.verifier()
    shown = [
        {"n": n, "signed": signed, "content": verify_receipt(signed, verifier)}
        for n, signed in enumerate(_receipts(node, session), start=1)
    ]
    return page(
        request,
        "privacy/receipts.html",
        session,
        lang=language(request),
        receipts=list(reversed(shown)),
        vkey=verifier.to_vkey(),
    )


@router.get("/receipts/{n}.txt")
def receipt_file(node: NodeDep, session: MemberPage, n: int) -> Response:
    """One receipt as the signed note it is (what offline checking reads)."""
    mine = _receipts(node, session)
    if not 1 <= n <= len(mine):
        return Response("no such receipt", status_code=404, media_type="text/plain")
    headers = {"Content-Disposition": f'attachment; filename="consent-receipt-{n}.txt"'}
    return Response(mine[n - 1], media_type="text/plain; charset=utf-8", headers=headers)


@router.post("/receipts/check", response_class=HTMLResponse)
def check_receipt(request: Request, node: NodeDep, session: MemberPage, form: MemberForm) -> HTMLResponse:
    """Check a pasted receipt's signature with this node's key."""
    lang = language(request)
    signed = form.get("receipt", "").replace("\r\n", "\n")
    try:
        content = verify_receipt(signed if signed.endswith("\n") else signed + "\n", node.signer.verifier())
        result, ok = json.dumps(content, ensure_ascii=False, indent=2), True
    except (ReceiptError, ValueError) as exc:
        result, ok = str(exc), False
    return page(request, "privacy/checked.html", session, lang=lang, ok=ok, result=result)


@router.get("/data", response_class=HTMLResponse)
def data(request: Request, session: MemberPage) -> HTMLResponse:
    """What "my data" does, and the button that makes the access request."""
    return page(request, "privacy/data.html", session, lang=language(request), result=None)


@router.post("/data")
def request_data(request: Request, node: NodeDep, session: MemberPage, form: MemberForm) -> RedirectResponse:
    """Make an access request (recorded) and show its result."""
    if not _budget(request, session):
        return back(f"{HOME}/data")
    made = attempt(session, node.rights.request_access, session.caller.id)
    return back(f"{HOME}/data" if made is FAILED else f"{HOME}/data/{made[0].dsr_id}")


@router.get("/data/{request_id}", response_class=HTMLResponse)
def data_result(request: Request, node: NodeDep, session: MemberPage, request_id: str) -> Response:
    """The result of one of the member's access requests, readable (and as JSON with ``.json``)."""
    as_json = request_id.endswith(".json")
    found = attempt(session, node.rights.access_result, session.caller.id, request_id.removesuffix(".json"))
    if found is FAILED:
        return back(f"{HOME}/data")
    req, result = found
    if as_json:
        headers = {"Content-Disposition": f'attachment; filename="my-data-{req.dsr_id}.json"'}
        body = json.dumps(result, ensure_ascii=False, indent=2, default=str)
        return Response(body, media_type="application/json", headers=headers)
    sections = {k: json.dumps(v, ensure_ascii=False, indent=2, default=str) for k, v in result.items()}
    return page(request, "privacy/data.html", session, lang=language(request), result=sections, req=req)


@router.post("/corrections")
def correct(request: Request, node: NodeDep, session: MemberPage, form: MemberForm) -> RedirectResponse:
    """Correct the member's date of birth."""
    try:
        born = date.fromisoformat(form.get("birth_date", ""))
    except ValueError:
        session.say("the date of birth must be a date (YYYY-MM-DD)")
        return back(HOME)
    if (
        _budget(request, session)
        and attempt(session, node.rights.correct, session.caller.id, birth_date=born) is not FAILED
    ):
        session.say(language_text(request, "corrected"), language(request), alert=False)
    return back(HOME)


@router.post("/phone")
def phone(request: Request, node: NodeDep, session: MemberPage, form: MemberForm) -> RedirectResponse:
    """Register, change or remove (empty) the member's phone number."""
    if _budget(request, session):
        attempt(session, node.consent.set_phone, session.caller.id, form.get("phone", "").strip() or None)
    return back(HOME)


@router.get("/churn", response_class=HTMLResponse)
def churn(request: Request, node: NodeDep, session: MemberPage) -> HTMLResponse:
    """The member's churn risk and its factors, if they allowed personalization (each look is an
    audited automated decision, so it counts against the member's budget as the API's does)."""
    if not _budget(request, session):
        return page(request, "privacy/churn.html", session, lang=language(request), risk=None)
    risk = attempt(session, node.churn_scoring.for_member, session.caller.id, datetime.now(UTC).date())
    shown = None if risk is FAILED else risk
    return page(request, "privacy/churn.html", session, lang=language(request), risk=shown)


@router.get("/erase", response_class=HTMLResponse)
def erase_page(request: Request, session: MemberPage) -> HTMLResponse:
    """What erasure does and does not do, and the confirmation."""
    return page(request, "privacy/erase.html", session, lang=language(request))


@router.post("/erase", response_class=HTMLResponse)
def erase(request: Request, node: NodeDep, session: MemberPage, form: MemberForm) -> Response:
    """Erase the member once they confirmed: every session of theirs ends with it."""
    if form.get("confirm") != "yes":
        return back(f"{HOME}/erase")
    if not _budget(request, session) or attempt(session, node.rights.erase, session.caller.id) is FAILED:
        return back(f"{HOME}/erase")
    sessions_of(request).end_member(session.caller.id)
    response = page(request, "privacy/done.html", None, lang=language(request), key="erased")
    clear_session_cookie(response, MEMBER_COOKIE)
    return response


@router.post("/sign-out", response_class=HTMLResponse)
def sign_out(request: Request, session: MemberPage, form: MemberForm) -> HTMLResponse:
    """End the session."""
    sessions_of(request).end(session.id)
    response = page(request, "privacy/done.html", None, lang=language(request), key="signed_out")
    clear_session_cookie(response, MEMBER_COOKIE)
    return response
