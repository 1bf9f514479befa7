"""`serve` with JSON logs: one exchange followed by its request id through the access line, the node's own
lines and the response; and nothing secret or personal in any line either server wrote."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from exchange_fixtures import Pair, build_pair
from prometheus_client.parser import text_string_to_metric_families

from node.core.auth import Role

MEMBER = "member-ops-7f3a9c"  # distinctive: a grep for it cannot match by chance
REQUEST_ID = "ops-test-exchange-0001"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    p = build_pair(tmp_path_factory.mktemp("ops"), [MEMBER], env={"ALLIANCE_LOG_FORMAT": "json"})
    yield p
    p.close()


@pytest.fixture(scope="module")
def exchanged(pair: Pair) -> tuple[dict, dict[str, str], str]:
    """One exchange made with a known request id: its body, its headers and the member's token."""
    with pair.client("airline", MEMBER) as c:
        token = c.headers["authorization"].removeprefix("Bearer ")
        r = c.post(
            "/v1/me/exchanges",
            json={"to": pair.destination.node_id, "points": 100},
            headers={"X-Request-ID": REQUEST_ID},
        )
    assert r.status_code == 201, r.text
    return r.json(), dict(r.headers), token


def _lines(pair: Pair, key: str) -> list[dict]:
    text = (pair.base / f"{key}.log").read_text()
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_the_response_carries_the_request_id(exchanged: tuple[dict, dict[str, str], str]) -> None:
    assert exchanged[1]["x-request-id"] == REQUEST_ID


def test_the_access_line_carries_the_request_id(pair: Pair, exchanged: tuple[dict, dict[str, str], str]) -> None:
    access = [x for x in _lines(pair, "airline") if x["logger"] == "alliance.access" and x["request_id"] == REQUEST_ID]
    assert [(x["method"], x["route"], x["status"]) for x in access] == [("POST", "/v1/me/exchanges", 201)]


def test_the_nodes_own_line_about_the_exchange_carries_the_request_id(
    pair: Pair, exchanged: tuple[dict, dict[str, str], str]
) -> None:
    body = exchanged[0]
    own = [x for x in _lines(pair, "airline") if x["logger"].startswith("node.") and x["request_id"] == REQUEST_ID]
    assert any(body["exchange_id"] in x["message"] and "confirmed" in x["message"] for x in own)


def test_no_line_of_either_server_holds_a_member_a_token_or_a_key(
    pair: Pair, exchanged: tuple[dict, dict[str, str], str]
) -> None:
    token = exchanged[2]
    secrets = {
        "member": MEMBER,
        "token": token,
        "token signature": token.rsplit(".", 1)[-1],
        # PRIVATE+KEY+<name>+<id>+<base64 seed>: the seed's base64 may itself hold a "+"
        **{f"{k} key": pair.node(k).signer.to_skey().split("+", 4)[4] for k in ("airline", "shop")},
    }
    for key in ("airline", "shop"):
        text = (pair.base / f"{key}.log").read_text()
        assert text.strip(), f"{key} wrote no log lines"
        leaked = [what for what, value in secrets.items() if value in text]
        assert not leaked, f"{key}'s log holds: {leaked}"


def test_the_served_metrics_count_the_exchange(pair: Pair, exchanged: tuple[dict, dict[str, str], str]) -> None:
    key = pair.node("airline").staff_keys.issue("prometheus", Role.OPERATOR)
    with pair.client("airline") as c:
        r = c.get("/metrics", headers={"Authorization": f"Bearer {key}"})
    families = {f.name: f.samples for f in text_string_to_metric_families(r.text)}
    confirmed = [
        s.value for s in families["alliance_exchanges"] if s.labels == {"direction": "out", "state": "confirmed"}
    ]
    assert confirmed == [1.0]


def test_serve_runs_the_duties_and_metrics_show_their_runs(tmp_path_factory: pytest.TempPathFactory) -> None:
    from node.core.datadir import init_node
    from node.core.processes import ServerProcess, free_port
    from node.runtime import Node

    base = tmp_path_factory.mktemp("jobs")
    init_node(base / "n", "jobs.alliance.example", jobs={"points_expire": "every 1m", "witness_request": "off"})
    node = Node.open(base / "n")
    key = node.staff_keys.issue("prometheus", Role.OPERATOR)
    node.dispose()
    server = ServerProcess(base / "n", free_port(), base / "n.log", jobs=True).start()
    try:
        deadline = time.monotonic() + 30
        while True:  # the loop's first pass runs at start; give it a moment
            r = httpx.get(f"{server.base_url}/metrics", headers={"Authorization": f"Bearer {key}"}, timeout=5)
            runs = {
                (s.labels["job"], s.labels["outcome"]): s.value
                for f in text_string_to_metric_families(r.text)
                if f.name == "alliance_job_runs"
                for s in f.samples
            }
            if runs.get(("points_expire", "ok")) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert runs[("points_expire", "ok")] >= 1
        assert runs[("witness_request", "ok")] == 0
    finally:
        server.stop()
