"""Schemathesis over the node's OpenAPI schema: no generated request gets a 5xx or a non-problem error, and
every answer is one the document declares (status, media type, headers, body schema)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from api_fixtures import Api, open_api
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from node.api.app import create_app
from node.runtime import Node

CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,  # an undeclared status fails: every problem an operation gives is in the document
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def app(node: Node) -> FastAPI:
    """The API of a node whose audit log holds twenty entries, so the log endpoints have something to serve."""
    node.store.log("audit").append([f"event {i}".encode() for i in range(20)])
    return create_app(node)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    """A node with a notice, staff keys and a member with a token: the generated requests reach the services."""
    # a limit no fuzzing pass reaches: the member's generated writes must all get through, up to the erasure
    opened = open_api(tmp_path / "n", ("M-1",), rate_limits={"member_writes_per_minute": 100_000})
    yield opened
    opened.node.dispose()


def _content_type(response) -> str:  # type: ignore[no-untyped-def]
    value = response.headers.get("content-type", "")
    return value[0] if isinstance(value, list) else value


def test_every_operation_answers_generated_requests_without_a_server_error(app: FastAPI) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 6
    for op in operations:
        _fuzz(op, {}, max_examples=40)


def test_every_operation_answers_each_role_conformingly(api: Api) -> None:
    """The same with the credentials of each role, so generated requests get past the role check; the
    member comes last, as a generated erasure ends their account."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    for headers in (api.operator, api.officer, api.members["M-1"]):
        for op in operations:
            _fuzz(op, headers, max_examples=15)


def _fuzz(op, headers: dict[str, str], max_examples: int) -> None:  # type: ignore[no-untyped-def]
    # a fixed seed (derandomize) and a bound on examples: the same requests on every run, in seconds
    @given(case=op.as_strategy())
    @settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=True,
    )
    def check(case) -> None:  # type: ignore[no-untyped-def]
        response = case.call_and_validate(checks=CONFORMANCE, headers=headers)
        assert response.status_code < 500, f"{op.label}: {response.status_code} {response.text[:300]}"
        if response.status_code >= 400 and not _content_type(response).startswith("text/x.tlog.size"):
            assert _content_type(response) == "application/problem+json", op.label

    check()


@pytest.mark.parametrize("body", [b"", b"\x00\xff", b"old 0\n\n" + b"x" * 70_000, b"old 99999999999999999999\n\nx"])
def test_witness_endpoint_refuses_hostile_bodies_with_a_4xx(app: FastAPI, body: bytes) -> None:
    r = TestClient(app, raise_server_exceptions=False).post("/v1/witness/add-checkpoint", content=body)
    assert 400 <= r.status_code < 500
    assert r.headers["content-type"] == "application/problem+json"
