"""RFC 9457 problem details: every error the API returns, and the handlers that make them."""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from compliance.notices import NoticeError
from compliance.pia import PiaRefused, UnknownPiaError
from compliance.pseudonyms import MemberErasedError
from compliance.purposes import PurposeError
from compliance.rights_service import COMPLAINT_ROUTE, RequestRefused
from compliance.service import ConsentDenied, GuardianRequiredError, UnknownMemberError
from compliance.store import DuplicateError
from ledger.errors import LedgerError, StorageError, StorageUnavailableError, TreeSizeError
from node.exchange.links import LinkError
from node.exchange.quotes import QuoteError
from node.exchange.service import ExchangeRefused
from node.peers.registry import UnknownBrandError
from node.peers.signing import PeerAuthError
from node.settlement.service import SettlementError
from node.wallet.journal import WalletError

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("alliance.node")


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


# Errors whose problem is just their message under a fixed status (plus a fixed reason code).
SIMPLE: dict[type[Exception], tuple[int, dict[str, str]]] = {
    UnknownMemberError: (404, {}),
    DuplicateError: (409, {}),
    PermissionError: (403, {"reason_code": "guardian_consent_required"}),
    NoticeError: (422, {}),
    GuardianRequiredError: (422, {"reason_code": "guardian_required"}),
    PurposeError: (422, {}),
    TreeSizeError: (400, {}),
    UnknownPiaError: (404, {}),
    UnknownBrandError: (404, {"reason_code": "unknown_brand"}),
    SettlementError: (422, {"reason_code": "bad_statement"}),
}


def _simple(status: int, extra: dict[str, str]):  # type: ignore[no-untyped-def]
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(status, str(exc), request, **extra)

    return handler


def install(app: FastAPI) -> None:
    """Route every error through problem+json; nothing leaks a traceback."""
    for exc_type, (status, extra) in SIMPLE.items():
        app.add_exception_handler(exc_type, _simple(status, extra))

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.detail, request, exc.type, **exc.extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        return problem_response(exc.status_code, detail, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        return problem_response(422, "the request is not valid", request, errors=errors)

    @app.exception_handler(PiaRefused)
    async def _pia_refused(request: Request, exc: PiaRefused) -> JSONResponse:
        status = 403 if exc.reason == "four_eyes" else 409
        return problem_response(status, str(exc), request, reason_code=exc.reason)

    @app.exception_handler(ConsentDenied)
    async def _denied(request: Request, exc: ConsentDenied) -> JSONResponse:
        return problem_response(
            403,
            str(exc),
            request,
            reason_code=exc.reason.value,
            purpose=exc.purpose_code,
            complaint_route="/v1/notices (rights.complaint)",
        )

    @app.exception_handler(MemberErasedError)
    async def _erased(request: Request, exc: MemberErasedError) -> JSONResponse:
        return problem_response(410, "this member's data was erased", request)

    @app.exception_handler(RequestRefused)
    async def _refused(request: Request, exc: RequestRefused) -> JSONResponse:
        return problem_response(
            409,
            str(exc),
            request,
            reason_code=exc.reason_code,
            request_id=exc.request.dsr_id,
            complaint_route=COMPLAINT_ROUTE,
        )

    @app.exception_handler(ExchangeRefused)
    async def _exchange(request: Request, exc: ExchangeRefused) -> JSONResponse:
        return problem_response(exc.status, str(exc), request, reason_code=exc.reason)

    @app.exception_handler(QuoteError)
    async def _quote(request: Request, exc: QuoteError) -> JSONResponse:
        return problem_response(422, str(exc), request, reason_code=exc.reason)

    @app.exception_handler(PeerAuthError)
    async def _peer_auth(request: Request, exc: PeerAuthError) -> JSONResponse:
        return problem_response(401, str(exc), request, reason_code=exc.reason)

    @app.exception_handler(LinkError)
    async def _link(request: Request, exc: LinkError) -> JSONResponse:
        status = 410 if exc.reason in ("expired_code", "used_code") else 409 if exc.reason == "already_linked" else 422
        return problem_response(status, str(exc), request, reason_code=exc.reason)

    @app.exception_handler(WalletError)
    async def _wallet(request: Request, exc: WalletError) -> JSONResponse:
        status = 409 if exc.reason == "insufficient_points" else 422
        return problem_response(status, str(exc), request, reason_code=exc.reason)

    @app.exception_handler(StorageUnavailableError)
    async def _unavailable(request: Request, exc: StorageUnavailableError) -> JSONResponse:
        return _busy(request, exc)

    @app.exception_handler(StorageError)
    async def _storage(request: Request, exc: StorageError) -> JSONResponse:
        return problem_response(404 if str(exc).startswith("no log") else 409, str(exc), request)

    @app.exception_handler(LedgerError)
    async def _ledger(request: Request, exc: LedgerError) -> JSONResponse:
        return problem_response(400, str(exc), request)

    @app.exception_handler(OperationalError)
    async def _database_busy(request: Request, exc: OperationalError) -> JSONResponse:
        return _busy(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return problem_response(500, "internal error; the node's log has the details", request)
