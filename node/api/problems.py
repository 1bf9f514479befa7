"""RFC 9457 problem details: every error the API returns, and the one table of their HTTP statuses.

Services and stores raise refusals that carry a reason code (:class:`node.core.refusals.Refused`
and the refusals of ``compliance``); they never pick an HTTP status. :data:`STATUS` does, in one
table: by the kind of refusal, then by its reason code. Nothing leaks a traceback: an unexpected
error is a 500 whose details go to the node's log.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from compliance.consent import Reason
from compliance.notices import NoticeError
from compliance.pia import PiaRefused, UnknownPiaError
from compliance.pseudonyms import MemberErasedError
from compliance.purposes import PurposeError
from compliance.rights_service import COMPLAINT_ROUTE, RequestRefused
from compliance.service import ConsentDenied, GuardianRequiredError, UnknownMemberError
from compliance.store import DuplicateError
from ledger.errors import LedgerError, StorageError, StorageUnavailableError, TreeSizeError, UnknownLogError
from node.core.refusals import Refused
from node.peers.outbound import EgressRefused, PeerUnavailable
from node.peers.signing import PeerAuthError

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
        # 404: no such thing here
        "unknown_brand": 404,
        # 409: the current state forbids it
        "insufficient_points": 409,
        "not_linked": 409,
        "in_progress": 409,
        "already_linked": 409,
        "no_model": 409,
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
    ConsentDenied: {None: 403},
    PermissionError: {None: 403},  # a minor consenting without their guardian
    PiaRefused: {"four_eyes": 403, None: 409},
    RequestRefused: {None: 409},
    DuplicateError: {None: 409},
    UnknownMemberError: {None: 404},
    UnknownPiaError: {None: 404},
    MemberErasedError: {None: 410},
    NoticeError: {None: 422},
    PurposeError: {None: 422},
    GuardianRequiredError: {None: 422},
    UnknownLogError: {None: 404},
    StorageError: {None: 409},
    TreeSizeError: {None: 400},
    LedgerError: {None: 400},
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
    elif isinstance(exc, PermissionError):
        extra = {"reason_code": "guardian_consent_required"}
    elif isinstance(exc, GuardianRequiredError):
        extra = {"reason_code": "guardian_required"}
    return extra


def _detail(exc: Exception) -> str:
    if isinstance(exc, MemberErasedError):
        return "this member's data was erased"  # never the pseudonym the error names
    return str(exc)


class Problem(Exception):
    """An error with an HTTP status, raised by routes and rendered as problem+json."""

    def __init__(self, status: int, detail: str, type_: str = "about:blank", **extra: object) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.type = type_
        self.extra = extra


def problem_response(
    status: int, detail: str, request: Request, type_: str = "about:blank", **extra: object
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
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def _busy(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable on %s: %s", request.url.path, exc)
    response = problem_response(503, "the node's database is busy or unavailable; retry shortly", request)
    response.headers["Retry-After"] = "1"
    return response


async def _mapped(request: Request, exc: Exception) -> JSONResponse:
    return problem_response(status_of(exc), _detail(exc), request, **_extras(exc))


async def _problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(exc.status, exc.detail, request, exc.type, **exc.extra)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    return problem_response(exc.status_code, detail, request)


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
    return problem_response(422, "the request is not valid", request, errors=errors)


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    return _busy(request, exc)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s", request.url.path)
    return problem_response(500, "internal error; the node's log has the details", request)


def install(app: FastAPI) -> None:
    """Route every error through problem+json; nothing leaks a traceback."""
    for exc_type in STATUS:
        app.add_exception_handler(exc_type, _mapped)
    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(RequestValidationError, _validation)
    # the database is busy or unreachable: retry shortly (the ledger's own error or SQLAlchemy's)
    app.add_exception_handler(StorageUnavailableError, _unavailable)
    app.add_exception_handler(OperationalError, _unavailable)
    app.add_exception_handler(Exception, _unexpected)
