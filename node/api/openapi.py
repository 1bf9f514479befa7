"""The OpenAPI document declares the problem+json answers each operation can give, with their reason codes.

FastAPI documents the success response and a 422 in its own (non-problem) shape; every error this
API answers is an RFC 9457 problem. :func:`install` adds them to the document, from what each
route asks of its caller (``deps.Access``) and from :data:`problems.STATUS`:

- every operation: 413 (a body over its family's cap) and 503 (database busy; ``Retry-After``);
- an operation with parameters or a body: 422; with a body: 400 too (a body that does not parse);
- with path parameters: 404 (the path names nothing here); reading a log: 400 and 404;
- needing credentials: 401 (``WWW-Authenticate: Bearer``), 403 (the role may not) and 429 (a
  credential that failed too often, or a member past their budget of audited actions);
- a peer call: 401 (``WWW-Authenticate: Signature``) with the signature's reason codes;
- both of these act through the node's services, so they also declare every status of
  :data:`problems.STATUS` with the reason codes answered with it.

A status the route declares itself keeps its description and other media types, and every error
a route declares offers the problem shape too (the witness's 409 is a problem for a split view).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from node.api.deps import Access, dependency_calls, get_log
from node.api.problems import PROBLEM_JSON, reason_codes
from node.peers.signing import AUTH_REASONS

_REF = "#/components/responses/"
BEARER = "bearer"
BEARER_SCHEME: dict[str, Any] = {
    "type": "http",
    "scheme": "bearer",
    "description": "A staff API key (ank_...) or a member token the operator issued.",
}
_PROBLEM = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; refusals add a reason_code, and some what they concern.",
    "type": "object",
    "required": ["type", "title", "status", "detail", "instance"],
    "properties": {
        "type": {"type": "string", "description": "about:blank unless a more specific type applies"},
        "title": {"type": "string", "description": "the status's reason phrase"},
        "status": {"type": "integer"},
        "detail": {"type": "string", "description": "what went wrong, for people"},
        "instance": {"type": "string", "description": "the request's path"},
        "reason_code": {"type": "string", "description": "why a refusal was made, for programs"},
        "errors": {
            "type": "array",
            "description": "a 422's invalid parts of the request",
            "items": {
                "type": "object",
                "properties": {"loc": {"type": "array", "items": {}}, "msg": {"type": "string"}},
            },
        },
        "purpose": {"type": "string", "description": "the purpose a consent refusal concerns"},
        "complaint_route": {"type": "string", "description": "where the member may complain"},
        "request_id": {"type": "string", "description": "the rights request a refusal concerns"},
        "http_request_id": {
            "type": "string",
            "description": "this HTTP request's id (also the X-Request-ID header): quote it to the operator",
        },
    },
    "additionalProperties": True,
}

_SUMMARY = {
    400: "the request or its body cannot be used (a malformed body, tree sizes the log does not have)",
    401: "no credentials, or a staff key or member token that is not valid",
    403: "the caller's role may not do this (no reason_code), or the node refused it",
    404: "the path names nothing on this node",
    409: "the current state forbids it",
    410: "gone for good",
    413: "the request body is larger than the limit of this endpoint's family (setting body_limits)",
    429: "too many failed authentications with this credential, or audited actions by this member (setting"
    " rate_limits): retry after Retry-After seconds",
    422: "the request is not valid (errors lists where), or cannot be carried out as sent",
    502: "another node failed to answer; its reason, if any, passes through",
    503: "the node's database is busy or unavailable, or the node is not in the alliance yet: retry later",
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": 'Bearer; error="invalid_token" for a refused credential (RFC 6750)'}},
    429: {"Retry-After": {"description": "seconds to wait before retrying"}},
    503: {"Retry-After": {"description": "seconds to wait before retrying"}},
}
PEER_401 = "PeerUnauthorized"


def _component(status: int, description: str, headers: dict[str, Any] | None = None, codes: Sequence[str] = ()) -> Any:
    if codes:
        description += "; reason_code: " + ", ".join(codes)
    response: dict[str, Any] = {"description": description, "content": _PROBLEM}
    if headers:
        response["headers"] = {name: {**h, "schema": {"type": "string"}} for name, h in headers.items()}
    if codes:
        response["x-reason-codes"] = list(codes)
    return response


def components() -> dict[str, Any]:
    """The shared responses, one per status (named ``Problem<status>``), and the peer calls' 401."""
    codes = reason_codes() | {429: ["rate_limited"]}
    responses = {
        f"Problem{status}": _component(status, summary, _HEADERS.get(status), codes.get(status, []))
        for status, summary in _SUMMARY.items()
    }
    responses[PEER_401] = _component(
        401,
        "the call is not signed by a brand in the registry (RFC 9421)",
        {
            "WWW-Authenticate": {"description": "Signature"},
            "Accept-Signature": {"description": "the components and parameters to sign (RFC 9421 section 5.1)"},
        },
        AUTH_REASONS,
    )
    return responses


def statuses(route: APIRoute, access: Access, operation: dict[str, Any]) -> dict[int, str]:
    """Which shared problem response each status of this operation refers to."""
    parameters = operation.get("parameters", [])
    has_body = "requestBody" in operation
    found = {413: "Problem413", 503: "Problem503"}
    if parameters or has_body:
        found[422] = "Problem422"
    if has_body:
        found[400] = "Problem400"
    if any(p.get("in") == "path" for p in parameters):
        found[404] = "Problem404"
    if get_log in dependency_calls(route.dependant):
        found |= {400: "Problem400", 404: "Problem404"}
    if access is Access.PUBLIC:
        return found
    found |= {status: f"Problem{status}" for status in reason_codes() if status in _SUMMARY}
    found[401] = PEER_401 if access is Access.PEER else "Problem401"
    if access is Access.CREDENTIALS:
        found[429] = "Problem429"  # a credential that failed too often (rate_limits)
    return dict(sorted(found.items()))


def declare_problems(document: dict[str, Any], routes: Sequence[tuple[APIRoute, Access]]) -> None:
    """Add the problem responses of every operation of ``routes`` to ``document`` (in place)."""
    shared = components()
    parts = document.setdefault("components", {})
    parts.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    parts["responses"] = shared
    parts["securitySchemes"] = {BEARER: BEARER_SCHEME}
    for route, access in routes:
        operations = document["paths"].get(route.path_format, {})
        for method in sorted(route.methods):
            operation = operations.get(method.lower())
            if operation is None:
                continue  # HEAD, or a route left out of the document
            if access is Access.CREDENTIALS:  # so that Swagger UI's "Authorize" sends the credential
                operation["security"] = [{BEARER: []}]
            answers = operation.setdefault("responses", {})
            for status, name in statuses(route, access, operation).items():
                own = answers.get(str(status))
                if own is None or (status == 422 and _is_fastapis_422(own)):
                    answers[str(status)] = {"$ref": _REF + name}
                else:  # the route's own words stay
                    own["description"] = f"{own.get('description', '')}; or: {shared[name]['description']}"
            for status, own in answers.items():
                if status[0] in "45" and "$ref" not in own:  # any error the route declares is a problem too
                    own.setdefault("content", {}).update(_PROBLEM)
            operation["responses"] = dict(sorted(answers.items()))
    _drop_unused_schemas(document, ("HTTPValidationError", "ValidationError"))


def _is_fastapis_422(response: dict[str, Any]) -> bool:
    return "HTTPValidationError" in str(response.get("content", {}))


def _drop_unused_schemas(document: dict[str, Any], names: Sequence[str]) -> None:
    """Remove FastAPI's validation error schemas once no operation refers to them (our 422 is a problem)."""
    if names[0] not in json.dumps(document["paths"]):
        for name in names:
            document["components"]["schemas"].pop(name, None)


def install(app: FastAPI, routes: Sequence[tuple[APIRoute, Access]]) -> None:
    """Have ``app`` serve a document declaring its problems (FastAPI's documented way to extend it)."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()  # FastAPI's, cached on the app; completed in place
            declare_problems(document, routes)
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
