"""Typed dependencies shared by the routers, and what each route asks of its caller.

Credentials and peer signatures are checked by :mod:`node.api.bodies` before a request's body is
read; the dependencies here take the caller it found (``request.state``) and check the role.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant

from ledger.storage import Log
from node.api.problems import Problem
from node.api.ratelimits import Limiters, RateLimiter, credential_key, too_many
from node.core.auth import KEY_PREFIX, AuthError, Caller, Role, current_caller
from node.peers.signing import PeerAuthError
from node.runtime import Node

#: Where :mod:`node.api.bodies` leaves what it authenticated, in ``request.state``.
CALLER_STATE = "caller"
PEER_STATE = "peer_caller"


def get_node(request: Request) -> Node:
    """The node this app serves."""
    return request.app.state.node


NodeDep = Annotated[Node, Depends(get_node)]


def get_log(name: str, node: NodeDep) -> Log:
    """The log named in the path, or a 404 problem."""
    if name not in node.store.log_names():
        raise Problem(404, f"this node has no log named {name!r}")
    return node.store.log(name)


LogDep = Annotated[Log, Depends(get_log)]


def bearer_challenge(error: str | None = None, description: str | None = None) -> dict[str, str]:
    """The ``WWW-Authenticate`` header of a 401 for the bearer credentials (RFC 6750 section 3).

    Without credentials the challenge carries no error code; with a refused one, ``invalid_token``,
    and ``invalid_request`` when the header is not a bearer credential at all.
    """
    if error is None:
        return {"WWW-Authenticate": "Bearer"}
    detail = "" if description is None else f', error_description="{_quotable(description)}"'
    return {"WWW-Authenticate": f'Bearer error="{error}"{detail}'}


def _quotable(text: str) -> str:
    # a quoted-string may not hold '"' or '\' unescaped, nor anything outside visible ASCII
    return "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "?" for c in text)[:200]


def authenticate(authorization: str | None, node: Node, failures: RateLimiter | None = None) -> Caller | None:
    """The caller an ``Authorization`` header names: ``None`` without one, a 401 problem for a bad one.

    With ``failures``, a credential that failed too often lately is refused 429 before being checked.
    """
    if not authorization:
        return None
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credential:
        detail = "use 'Authorization: Bearer <staff key or member token>'"
        raise Problem(401, detail, headers=bearer_challenge("invalid_request", detail))
    key = credential_key(credential)
    if failures is not None and (wait := failures.wait(key)):
        raise too_many(wait, "failed authentications with this credential")
    try:
        if credential.startswith(KEY_PREFIX):
            return node.staff_keys.check(credential)
        return node.member_tokens.check(credential)  # bound to the member's current account
    except AuthError as exc:
        if failures is not None:
            failures.take(key)
        raise Problem(401, str(exc), headers=bearer_challenge("invalid_token", str(exc))) from exc


def credentials_needed() -> Problem:
    """The 401 for a request that brought no credentials to an endpoint that needs them."""
    return Problem(401, "this endpoint needs credentials", headers=bearer_challenge())


class RoleCheck:
    """A dependency admitting only callers with one of ``roles`` (401 without credentials, 403 otherwise)."""

    def __init__(self, *roles: Role) -> None:
        self.roles = roles

    # async on purpose: a context variable set here is visible to the (threadpool) endpoint that
    # follows, which is how audit events learn their actor.
    async def __call__(self, request: Request, node: NodeDep) -> Caller:
        """The caller, authenticated before the body was read (or here, for an app without the guard)."""
        state = request.scope.get("state", {})
        if CALLER_STATE in state:
            caller = state[CALLER_STATE]
        else:
            caller = authenticate(request.headers.get("authorization"), node, limiters(request).failed_auth)
        if caller is None:
            raise credentials_needed()
        if caller.role not in self.roles:
            raise Problem(403, f"the {caller.role.value} role may not do this")
        current_caller.set(caller)
        return caller


def require(*roles: Role) -> RoleCheck:
    """A dependency admitting only callers with one of ``roles``."""
    return RoleCheck(*roles)


Staff = Annotated[Caller, Depends(require(Role.OPERATOR, Role.COMPLIANCE))]
#: Whoever watches the node: staff, and an entrusted host (``Role.HOST``), on routes that return no
#: identifier, sealed field or member's data.
Watcher = Annotated[Caller, Depends(require(Role.OPERATOR, Role.COMPLIANCE, Role.HOST))]
Operator = Annotated[Caller, Depends(require(Role.OPERATOR))]
ComplianceOfficer = Annotated[Caller, Depends(require(Role.COMPLIANCE))]
Member = Annotated[Caller, Depends(require(Role.MEMBER))]


def limiters(request: Request) -> Limiters:
    """The app's rate limits (set by ``create_app``)."""
    return request.app.state.limiters


async def member_write(request: Request, member: Member) -> Caller:
    """A member whose action appends audit events: within their budget, or 429 with ``Retry-After``."""
    if wait := limiters(request).member_writes.take(member.id):
        raise too_many(wait, "audited actions by this member")
    return member


#: A member acting in a way the audit log records: rate-limited per member (:mod:`node.api.ratelimits`).
MemberWrite = Annotated[Caller, Depends(member_write)]


async def peer_caller(request: Request) -> str:
    """The registry node id whose signature :mod:`node.api.bodies` verified, before the body was parsed.

    The signature is checked there and only there: a second check of the same request would find
    its nonce already seen and refuse it as a replay. (async: reading the state needs no worker thread)
    """
    node_id = request.scope.get("state", {}).get(PEER_STATE)
    if node_id is None:  # only an app built without the guard gets here
        raise PeerAuthError("unsigned", "peer calls must carry an HTTP message signature (RFC 9421)")
    return str(node_id)


PeerCaller = Annotated[str, Depends(peer_caller)]


class Access(StrEnum):
    """What a route asks of its caller before anything else."""

    PUBLIC = "public"
    CREDENTIALS = "credentials"  # a staff key or a member token (the role is checked by the route)
    PEER = "peer"  # an RFC 9421 signature by a brand in the registry


def access_of(dependant: Dependant) -> Access:
    """What the route with this dependency tree asks of its caller."""
    calls = list(dependency_calls(dependant))
    if peer_caller in calls:
        return Access.PEER
    if any(isinstance(call, RoleCheck) for call in calls):
        return Access.CREDENTIALS
    return Access.PUBLIC


def dependency_calls(dependant: Dependant) -> Iterator[Any]:
    """Every callable in a route's dependency tree, depth first."""
    for sub in dependant.dependencies:
        yield sub.call
        yield from dependency_calls(sub)
