"""RFC 9457 problem details: every error the API returns, and the one table of their HTTP statuses.

Services and stores raise refusals that carry a reason code (:class:`node.core.refusals.Refused`
and the refusals of ``compliance``); they never pick an HTTP status. :data:`STATUS` does, in one
table: by the kind of refusal, then by its reason code. Nothing leaks a traceback: an unexpected
error is a 500 whose details go to the node's log.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from compliance.consent import Reason
from compliance.notices import NoticeError
from compliance.phones import PhoneError
from compliance.pia import PiaRefused, UnknownPiaError
from compliance.pseudonyms import MemberErasedError
from compliance.purposes import PurposeError
from compliance.reviews import ReviewRefused
from compliance.rights_service import COMPLAINT_ROUTE, RequestRefused
from compliance.service import BirthDateError, ConsentDenied, GuardianRequiredError, UnknownMemberError
from compliance.store import DuplicateError
from ledger.errors import LedgerError, StorageError, StorageUnavailableError, TreeSizeError, UnknownLogError
from node import missing_extra
from node.core.refusals import Refused
from node.ops.access import route_template
from node.ops.logsetup import NO_REQUEST, request_id
from node.peers.outbound import EgressRefused, PeerRefused, PeerUnavailable
from node.peers.signing import LABEL, REQUIRED, TAG, PeerAuthError

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("alliance.node")
_CONSENT_REFUSALS = [r.value for r in Reason if r not in (Reason.CONTRACT_BASIS, Reason.CONSENT_GRANTED)]

#: The HTTP status of every refusal and error the API answers: by kind (the nearest class listed),
#: then by reason code within that kind; ``None`` is the kind's status for any other reason.
STATUS: dict[type[Exception], dict[str | None, int]] = {
    Refused: {
        # 403: not allowed (consent, a feature switch, someone else's record)
        **dict.fromkeys(_CONSENT_REFUSALS, 403),
        "feature_off": 403,
        "not_your_quote": 403,
        "not_your_exchange": 403,
        "not_your_statement": 403,
        "not_a_joint_handler": 403,
        # 404: no such thing here
        "unknown_brand": 404,
        # 409: the current state forbids it
        "insufficient_points": 409,
        "not_linked": 409,
        "in_progress": 409,
        "already_linked": 409,
        "no_model": 409,
        "idempotency_conflict": 409,
        # 410: gone for good
        "expired_code": 410,
        "used_code": 410,
        # 502 / 503: another node failed, or this one is not in the alliance yet
        "peer_unreachable": 502,
        "not_in_registry": 503,
        # 422: understood, but it cannot be carried out as sent (quotes, amounts, statements …)
        None: 422,
    },
    PeerAuthError: {None: 401},  # the calling node is not who it claims to be
    EgressRefused: {None: 403},  # the egress check refused to send
    PeerUnavailable: {None: 502},  # another node failed; its reason, if any, passes through
    PeerRefused: {None: 422},  # another node refused: its reason passes through, its statuses are not ours
    ConsentDenied: {None: 403},
    PermissionError: {None: 403},  # a minor consenting without their guardian
    PiaRefused: {"four_eyes": 403, None: 409},
    RequestRefused: {
        "request_expired": 410,
        "birth_date_out_of_range": 422,
        # a portability request the other brand refused, or could not be reached for
        "unknown_code": 422,
        "used_code": 410,
        "expired_code": 410,
        "peer_refused": 422,
        "peer_unreachable": 502,
        None: 409,
    },
    # a review of an automated decision: the member's own decision or review only; one review each
    ReviewRefused: {
        "unknown_decision": 404,
        "unknown_review": 404,
        "already_contested": 409,
        "already_decided": 409,
        None: 422,
    },
    DuplicateError: {None: 409},
    UnknownMemberError: {None: 404},
    UnknownPiaError: {None: 404},
    MemberErasedError: {None: 410},
    NoticeError: {None: 422},
    PurposeError: {None: 422},
    GuardianRequiredError: {None: 422},
    BirthDateError: {None: 422},
    PhoneError: {None: 422},
    UnknownLogError: {None: 404},
    StorageError: {None: 409},
    TreeSizeError: {None: 400},
    LedgerError: {None: 400},
}
#: Kinds whose problems carry a fixed reason code of their own.
FIXED_REASONS: dict[type[Exception], str] = {
    PermissionError: "guardian_consent_required",
    GuardianRequiredError: "guardian_required",
    BirthDateError: "birth_date_out_of_range",
    PhoneError: "invalid_phone",
}


def status_of(exc: Exception) -> int:
    """The HTTP status for ``exc``: its kind's entry for its reason, else the kind's own status."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            by_reason = STATUS[cls]
            reason = getattr(exc, "reason", None)
            return by_reason.get(reason, by_reason[None]) if isinstance(reason, str) else by_reason[None]
    return 500


def _extras(exc: Exception) -> dict[str, Any]:
    """Fields beyond the standard ones: the reason code, and where to complain or what it concerns."""
    reason = getattr(exc, "reason", None)
    extra: dict[str, Any] = {} if reason is None else {"reason_code": str(reason)}
    if isinstance(exc, ConsentDenied):
        extra |= {"purpose": exc.purpose_code, "complaint_route": "/v1/notices (rights.complaint)"}
    elif isinstance(exc, RequestRefused):
        extra |= {"request_id": exc.request.dsr_id, "complaint_route": COMPLAINT_ROUTE}
    elif isinstance(exc, ReviewRefused):
        extra |= {"complaint_route": COMPLAINT_ROUTE}
    for kind, code in FIXED_REASONS.items():
        if isinstance(exc, kind):
            return {"reason_code": code}
    return extra


def reason_codes() -> dict[int, list[str]]:
    """Every reason code :data:`STATUS` and :data:`FIXED_REASONS` name, by the status it is answered with."""
    by_status: dict[int, set[str]] = {status: set() for by_reason in STATUS.values() for status in by_reason.values()}
    for by_reason in STATUS.values():
        for reason, status in by_reason.items():
            if reason is not None:
                by_status[status].add(reason)
    for kind, code in FIXED_REASONS.items():
        by_status[STATUS[kind][None]].add(code)
    return {status: sorted(codes) for status, codes in sorted(by_status.items())}


def _detail(exc: Exception) -> str:
    if isinstance(exc, MemberErasedError):
        return "this member's data was erased"  # never the pseudonym the error names
    return str(exc)


class Problem(Exception):
    """An error with an HTTP status, raised by routes and rendered as problem+json (with ``headers``)."""

    def __init__(
        self,
        status: int,
        detail: str,
        type_: str = "about:blank",
        headers: Mapping[str, str] | None = None,
        **extra: object,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.type = type_
        self.headers = dict(headers or {})
        self.extra = extra


def problem_response(
    status: int,
    detail: str,
    request: Request,
    type_: str = "about:blank",
    headers: Mapping[str, str] | None = None,
    **extra: object,
) -> JSONResponse:
    """A problem+json response for ``status``."""
    body = {
        "type": type_,
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **extra,
    }
    if (rid := request_id.get()) != NO_REQUEST:
        body["http_request_id"] = rid  # what the caller quotes to an operator, who finds it in every log line
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def peer_challenge() -> dict[str, str]:
    """The headers of a 401 to a peer call: the signature it needs.

    RFC 9421 defines no authentication scheme, so ``WWW-Authenticate`` names ``Signature`` (the
    scheme HTTP signatures have been challenged with since the Cavage drafts) and
    ``Accept-Signature`` (RFC 9421 section 5.1) says exactly what to sign.
    """
    components = " ".join(f'"{c}"' for c in REQUIRED)
    return {
        "WWW-Authenticate": 'Signature realm="alliance"',
        "Accept-Signature": f'{LABEL}=({components});created;nonce;alg="ed25519";tag="{TAG}"',
    }


def error_response(exc: Exception, request: Request) -> JSONResponse:
    """The problem+json answer to ``exc``: what every exception handler and the body guard answer."""
    if isinstance(exc, Problem):
        return problem_response(exc.status, exc.detail, request, exc.type, exc.headers, **exc.extra)
    if isinstance(exc, StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        # keep the exception's headers: a 405 says which methods are allowed (RFC 9110 section 15.5.6)
        return problem_response(exc.status_code, detail, request, headers=exc.headers)
    if isinstance(exc, RequestValidationError):
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        return problem_response(422, "the request is not valid", request, errors=errors)
    if isinstance(exc, StorageUnavailableError | OperationalError):  # before STATUS: a kind of StorageError
        return _busy(request, exc)
    if isinstance(exc, tuple(STATUS)):
        headers = peer_challenge() if isinstance(exc, PeerAuthError) else None
        return problem_response(status_of(exc), _detail(exc), request, headers=headers, **_extras(exc))
    if needed := missing_extra(exc):  # a feature whose packages this install left out
        log.warning("%s on %s", needed, route_template(request.scope))
        return problem_response(503, f"not installed on this node: {needed}", request, headers={"Retry-After": "3600"})
    # the route's template, not its path: paths carry member references
    log.error("unhandled error on %s", route_template(request.scope), exc_info=exc)
    return problem_response(500, "internal error; the node's log has the details", request)


def _busy(request: Request, exc: Exception) -> JSONResponse:
    # the driver's message ("database is locked"), never SQLAlchemy's, which quotes the statement's parameters
    cause = getattr(exc, "orig", None) or type(exc).__name__
    log.warning("database unavailable on %s: %s", route_template(request.scope), cause)
    response = problem_response(503, "the node's database is busy or unavailable; retry shortly", request)
    response.headers["Retry-After"] = "1"
    return response


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    return error_response(exc, request)


def install(app: FastAPI) -> None:
    """Route every error through problem+json; nothing leaks a traceback."""
    for exc_type in STATUS:
        app.add_exception_handler(exc_type, _handle)
    app.add_exception_handler(Problem, _handle)
    app.add_exception_handler(StarletteHTTPException, _handle)
    app.add_exception_handler(RequestValidationError, _handle)
    # the database is busy or unreachable: retry shortly (the ledger's own error or SQLAlchemy's)
    app.add_exception_handler(StorageUnavailableError, _handle)
    app.add_exception_handler(OperationalError, _handle)
    app.add_exception_handler(Exception, _handle)
