"""One node behind a TestClient with a published notice, staff keys and member tokens."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from compliance_fixtures import notice_data
from fastapi.testclient import TestClient

from node.api.app import create_app
from node.core.auth import Role
from node.core.datadir import init_node
from node.runtime import Node

Headers = dict[str, str]


@dataclass
class Api:
    """The client, the node, the staff's headers (an entrusted host's too) and each member's."""

    client: TestClient
    node: Node
    officer: Headers
    operator: Headers
    members: dict[str, Headers]
    host: Headers


def open_api(data_dir: Path, member_refs: tuple[str, ...], **settings: object) -> Api:
    """Initialise a node in ``data_dir`` (with ``settings``), publish the test notice, register
    ``member_refs`` with tokens."""
    init_node(data_dir, "n.example", **settings)
    return serve(Node.open(data_dir), member_refs)


def serve(node: Node, member_refs: tuple[str, ...]) -> Api:
    """Serve ``node``: publish the test notice, issue staff keys (a host's too), register ``member_refs`` with
    tokens."""
    client = TestClient(create_app(node), raise_server_exceptions=False)
    officer = {"Authorization": f"Bearer {node.staff_keys.issue('chen', Role.COMPLIANCE)}"}
    operator = {"Authorization": f"Bearer {node.staff_keys.issue('olga', Role.OPERATOR)}"}
    host = {"Authorization": f"Bearer {node.staff_keys.issue('hugo', Role.HOST)}"}
    assert client.post("/v1/notices", json=notice_data(), headers=officer).status_code == 201
    members = {}
    for ref in member_refs:
        assert client.post("/v1/members", json={"member_ref": ref}, headers=operator).status_code == 201
        token = client.post(f"/v1/members/{ref}/token", headers=operator).json()["token"]
        members[ref] = {"Authorization": f"Bearer {token}"}
    return Api(client, node, officer, operator, members, host)
