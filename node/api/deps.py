"""Typed dependencies shared by the routers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from ledger.storage import Log
from node.api.problems import Problem
from node.core.auth import KEY_PREFIX, AuthError, Caller, Role, check_member_token, current_caller
from node.runtime import Node


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


def _caller(request: Request, node: NodeDep) -> Caller | None:
    auth = request.headers.get("authorization", "")
    scheme, _, credential = auth.partition(" ")
    if not auth:
        return None
    if scheme.lower() != "bearer" or not credential:
        raise Problem(401, "use 'Authorization: Bearer <staff key or member token>'")
    try:
        if credential.startswith(KEY_PREFIX):
            return node.staff_keys.check(credential)
        return check_member_token(node.signer.verifier(), credential)
    except AuthError as exc:
        raise Problem(401, str(exc)) from exc


def require(*roles: Role) -> Callable[..., Caller]:
    """A dependency admitting only callers with one of ``roles`` (401 without credentials, 403 otherwise)."""

    # async on purpose: a context variable set here is visible to the (threadpool) endpoint that
    # follows, which is how audit events learn their actor; the key lookup is one indexed read.
    async def dependency(request: Request, node: NodeDep) -> Caller:
        caller = _caller(request, node)
        if caller is None:
            raise Problem(401, "this endpoint needs credentials")
        if caller.role not in roles:
            raise Problem(403, f"the {caller.role.value} role may not do this")
        current_caller.set(caller)
        return caller

    return dependency


Staff = Annotated[Caller, Depends(require(Role.OPERATOR, Role.COMPLIANCE))]
Operator = Annotated[Caller, Depends(require(Role.OPERATOR))]
ComplianceOfficer = Annotated[Caller, Depends(require(Role.COMPLIANCE))]
Member = Annotated[Caller, Depends(require(Role.MEMBER))]
