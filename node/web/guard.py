"""What every page request passes: the session cookie, the CSRF token of forms, the security headers.

The API authenticates each request by its ``Authorization`` header; a page is authenticated by its
area's session cookie instead, and the role checks are the API's (:class:`node.core.auth.Role`).
Forms are URL-encoded and carry the session's CSRF token; a form whose token or ``Origin`` does not
match is refused before anything acts on it.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import parse_qsl, urlsplit

from fastapi import Depends, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from node.core.auth import Role, current_caller
from node.runtime import Node
from node.web.sessions import AREA_PATH, MEMBER_COOKIE, STAFF_COOKIE, Session, SessionStore

#: No inline script or style anywhere, nothing from another host, no framing, forms only to the node.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),  # not no-referrer: Chrome then sends "Origin: null" on our own forms
    (b"cache-control", b"no-store"),
]
#: The API answers JSON to programs: the page headers are for what a browser renders.
API_PREFIX = "/v1/"
MAX_FORM_FIELDS = 50


class SecurityHeaders:
    """ASGI middleware adding :data:`HEADERS` to every response outside the JSON API."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers to a page's response."""
        if scope["type"] != "http" or scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [h for h in HEADERS if h[0] not in present]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class SignInNeeded(Exception):
    """A page was asked for without a live session of a role that may see it."""

    def __init__(self, area: str, role_refused: Role | None = None) -> None:
        super().__init__(area)
        self.area = area
        self.role_refused = role_refused


class FormRefused(Exception):
    """A form whose CSRF token or origin does not match its session (HTTP 403)."""


def node_of(request: Request) -> Node:
    """The node these pages serve."""
    return request.app.state.node


def sessions_of(request: Request) -> SessionStore:
    """The page sessions of this app (:func:`node.web.site.create_site` makes them)."""
    return request.app.state.sessions


NodeDep = Annotated[Node, Depends(node_of)]


def set_session_cookie(request: Request, response: Response, cookie: str, session: Session) -> None:
    """Give the browser the session's cookie: HttpOnly, SameSite=Strict, Secure under TLS, ending with it."""
    response.set_cookie(
        cookie,
        session.id,
        max_age=sessions_of(request).ttl,
        path=AREA_PATH[cookie],
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_session_cookie(response: Response, cookie: str) -> None:
    """Tell the browser to drop the area's cookie."""
    response.delete_cookie(cookie, path=AREA_PATH[cookie], httponly=True, samesite="strict")


class PageRole:
    """A dependency admitting a live session of one of ``roles`` (else the area's sign-in page)."""

    def __init__(self, cookie: str, *roles: Role) -> None:
        self.cookie = cookie
        self.roles = roles

    # async, as the API's RoleCheck: the audit actor set here is seen by the threadpool endpoint after it
    async def __call__(self, request: Request) -> Session:
        """The session, with the audit actor set to the person signed in."""
        session = sessions_of(request).find(request.cookies.get(self.cookie))
        area = AREA_PATH[self.cookie]
        if session is None:
            raise SignInNeeded(area)
        node = node_of(request)
        if session.role is Role.MEMBER:
            current = node.member_tokens.still_current(session.caller)  # not erased, tokens not revoked
        else:
            current = node.staff_keys.active(session.caller.key_id)  # the key not revoked since sign-in
        if not current:
            sessions_of(request).end(session.id)
            raise SignInNeeded(area)
        if session.role not in self.roles:
            raise SignInNeeded(area, session.role)
        current_caller.set(session.caller)
        return session


MemberPage = Annotated[Session, Depends(PageRole(MEMBER_COOKIE, Role.MEMBER))]
StaffPage = Annotated[Session, Depends(PageRole(STAFF_COOKIE, Role.OPERATOR, Role.COMPLIANCE))]
OfficerPage = Annotated[Session, Depends(PageRole(STAFF_COOKIE, Role.COMPLIANCE))]
OperatorPage = Annotated[Session, Depends(PageRole(STAFF_COOKIE, Role.OPERATOR))]
#: Pages that show no identifier, sealed field or member's data: staff, and an entrusted host too.
WatcherPage = Annotated[Session, Depends(PageRole(STAFF_COOKIE, Role.OPERATOR, Role.COMPLIANCE, Role.HOST))]


async def read_form(request: Request) -> dict[str, str]:
    """The URL-encoded form of a POST (the last value of a repeated field; at most 50 fields)."""
    body = await request.body()
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS, strict_parsing=False)
    except (UnicodeDecodeError, ValueError) as exc:
        raise FormRefused("this form could not be read") from exc
    return dict(pairs)


def check_origin(request: Request, allow_opaque: bool = True) -> None:
    """Refuse a form a page of another site sent (browsers name the sending origin on every POST);
    without ``allow_opaque``, also one from an opaque origin (``null``: a sandboxed frame, a file)."""
    origin = request.headers.get("origin")
    if origin == "null" and not allow_opaque:
        raise FormRefused("this form was sent from a page with no origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.url.netloc:
        raise FormRefused("this form was sent from another site")


def check_form(request: Request, session: Session, form: dict[str, str]) -> None:
    """Refuse a form without its session's CSRF token, or sent from a page of another origin."""
    check_origin(request)
    if not hmac.compare_digest(form.get("csrf", "").encode(), session.csrf.encode()):
        raise FormRefused("this form has expired: reload the page and try again")


def form_of(cookie: str, *roles: Role) -> Callable[..., Awaitable[dict[str, str]]]:
    """A dependency giving a POST's checked form, from a live session of one of ``roles``."""
    role_check = PageRole(cookie, *roles)

    async def checked(request: Request) -> dict[str, str]:
        session = await role_check(request)
        form = await read_form(request)
        check_form(request, session, form)
        return form

    return checked


MemberForm = Annotated[dict[str, str], Depends(form_of(MEMBER_COOKIE, Role.MEMBER))]
StaffForm = Annotated[dict[str, str], Depends(form_of(STAFF_COOKIE, Role.OPERATOR, Role.COMPLIANCE))]
OfficerForm = Annotated[dict[str, str], Depends(form_of(STAFF_COOKIE, Role.COMPLIANCE))]
OperatorForm = Annotated[dict[str, str], Depends(form_of(STAFF_COOKIE, Role.OPERATOR))]
