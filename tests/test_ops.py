"""Running a node as a service: request ids, structured logs, readiness and Prometheus metrics."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from compliance.service import ConsentDenied
from node.api.app import create_app
from node.core.auth import Role
from node.core.datadir import init_node
from node.ops.access import accepted_request_id
from node.ops.logsetup import configure_logging
from node.runtime import Node

#: Every metric issue 19 asks for, by the name it is exposed under.
EXPECTED_METRICS = {
    "alliance_http_requests",
    "alliance_http_request_duration_seconds",
    "alliance_exchanges",
    "alliance_exchange_recovery_backlog",
    "alliance_consent_records",
    "alliance_gate_denials",
    "alliance_audit_outbox_depth",
    "alliance_log_size",
    "alliance_log_checkpoint_age_seconds",
    "alliance_witness_lag_entries",
    "alliance_dp_budget_left_epsilon",
    "alliance_rights_requests_open",
    "alliance_rights_requests_overdue",
    "alliance_anchor_lag_entries",
    "alliance_job_runs",
    "alliance_job_running",
    "alliance_job_last_success_timestamp_seconds",
}


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    init_node(tmp_path / "n", "ops.alliance.example")
    opened = Node.open(tmp_path / "n")
    yield opened
    opened.dispose()


@pytest.fixture
def client(node: Node) -> TestClient:
    return TestClient(create_app(node))


@pytest.fixture
def scraper(node: Node) -> TestClient:
    """What Prometheus is: a client with an operator's key."""
    key = node.staff_keys.issue("prometheus", Role.OPERATOR)
    return TestClient(create_app(node), headers={"Authorization": f"Bearer {key}"})


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = configure_logging("json", "INFO", stream)
    yield stream
    logging.getLogger().removeHandler(handler)


def _json_lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]


def _metrics(scraper: TestClient) -> dict[str, list]:
    r = scraper.get("/metrics")
    assert r.status_code == 200
    return {f.name: f.samples for f in text_string_to_metric_families(r.text)}


# --- request ids -------------------------------------------------------------------------------


def test_every_response_carries_a_request_id(client: TestClient) -> None:
    assert len(client.get("/health").headers["x-request-id"]) == 32


def test_a_callers_request_id_is_kept(client: TestClient) -> None:
    assert (
        client.get("/health", headers={"X-Request-ID": "trace-0123456789"}).headers["x-request-id"]
        == "trace-0123456789"
    )


@pytest.mark.parametrize("sent", ["short", "a" * 65, "has space in it", "名字名字名字名字名字"])
def test_an_implausible_request_id_is_replaced_not_echoed(sent: str) -> None:
    assert accepted_request_id(sent) != sent


def test_a_problem_body_names_the_request_id(client: TestClient) -> None:
    r = client.get("/v1/logs/nope/checkpoint", headers={"X-Request-ID": "req-abcdefgh"})
    assert r.status_code == 404
    assert r.json()["http_request_id"] == "req-abcdefgh"


# --- logs --------------------------------------------------------------------------------------


def test_the_access_line_is_structured_and_names_the_request(client: TestClient, lines: io.StringIO) -> None:
    client.get("/health", headers={"X-Request-ID": "req-12345678"})
    [access] = [x for x in _json_lines(lines) if x["logger"] == "alliance.access"]
    assert access | {"duration_ms": 0} == access | {
        "request_id": "req-12345678",
        "method": "GET",
        "route": "/health",
        "status": 200,
        "duration_ms": 0,
    }


def test_the_access_line_names_the_route_never_the_path_or_query(client: TestClient, lines: io.StringIO) -> None:
    client.get("/v1/members/member-secret-42/gate/marketing?token=eyJh.c2ln")
    text = lines.getvalue()
    assert "member-secret-42" not in text
    assert "eyJh" not in text
    [access] = [x for x in _json_lines(lines) if x["logger"] == "alliance.access"]
    assert access["route"] == "/v1/members/{member_ref}/gate/{purpose}"


def test_a_line_the_node_logs_while_serving_names_the_request(client: TestClient, lines: io.StringIO) -> None:
    client.get("/v1/logs/nope/checkpoint", headers={"X-Request-ID": "req-87654321"})
    assert {x["request_id"] for x in _json_lines(lines)} == {"req-87654321"}


def test_text_logs_carry_the_request_id_in_brackets(client: TestClient) -> None:
    stream = io.StringIO()
    handler = configure_logging("text", "INFO", stream)
    try:
        client.get("/health", headers={"X-Request-ID": "req-textline"})
    finally:
        logging.getLogger().removeHandler(handler)
    assert "[req-textline] GET /health 200" in stream.getvalue()


# --- readiness ---------------------------------------------------------------------------------


def test_a_healthy_node_is_ready(client: TestClient) -> None:
    r = client.get("/ready")
    assert (r.status_code, r.json()["status"]) == (200, "ready")


def test_an_unreadable_database_file_makes_the_node_not_ready(node: Node, client: TestClient) -> None:
    db = node.settings.data_dir / "node.db"
    os.replace(db, db.with_suffix(".moved"))  # the pool keeps its open files: only a new connection sees this
    db.write_bytes(b"not a database at all" * 100)
    db.chmod(0)  # and, for a user other than root, unreadable
    r = client.get("/ready")
    assert r.status_code == 503
    [failed] = [c for c in r.json()["checks"] if not c["ok"]][:1]
    assert failed["name"] == "database"
    assert client.get("/health").status_code == 200  # liveness does not touch the database


def test_a_missing_signing_key_makes_the_node_not_ready(node: Node, client: TestClient) -> None:
    node.settings.key_path.rename(node.settings.key_path.with_suffix(".away"))
    r = client.get("/ready")
    assert r.status_code == 503
    assert [c["name"] for c in r.json()["checks"] if not c["ok"]] == ["signing_key"]


# --- metrics -----------------------------------------------------------------------------------


def test_metrics_parse_and_carry_every_metric_the_issue_names(scraper: TestClient) -> None:
    scraper.get("/health")
    assert set(_metrics(scraper)) >= EXPECTED_METRICS


def test_metrics_need_a_staff_key(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 401


def test_requests_are_counted_by_route_template(scraper: TestClient) -> None:
    scraper.get("/v1/logs/audit/checkpoint")
    samples = _metrics(scraper)["alliance_http_requests"]
    assert any(s.labels["route"] == "/v1/logs/{name}/checkpoint" and s.value == 1 for s in samples)


def test_each_log_size_is_reported(node: Node, scraper: TestClient) -> None:
    node.audit("key.create", details={"holder": "ops", "role": "operator", "key_id": "k1"})
    sizes = {s.labels["log"]: s.value for s in _metrics(scraper)["alliance_log_size"]}
    assert sizes["audit"] == node.store.log("audit").size >= 1


def test_a_consent_gate_denial_is_counted_by_purpose(node: Node, scraper: TestClient) -> None:
    node.consent.register_members([("m1", None, None)])
    with pytest.raises(ConsentDenied):
        node.consent.check("m1", "marketing")
    denials = _metrics(scraper)["alliance_gate_denials"]
    assert [(s.labels["action"], s.labels["purpose"], s.value) for s in denials if s.name.endswith("_total")] == [
        ("gate.denied", "marketing", 1.0)
    ]


def test_exchange_states_are_reported_even_when_there_are_none(scraper: TestClient) -> None:
    states = {(s.labels["direction"], s.labels["state"]): s.value for s in _metrics(scraper)["alliance_exchanges"]}
    assert states[("out", "confirmed")] == 0
    assert states[("in", "credited")] == 0


def test_metrics_can_be_turned_off(tmp_path: Path) -> None:
    init_node(tmp_path / "off", "off.alliance.example")
    node = Node.open(tmp_path / "off", metrics=False)
    try:
        key = node.staff_keys.issue("prometheus", Role.OPERATOR)
        assert (
            TestClient(create_app(node)).get("/metrics", headers={"Authorization": f"Bearer {key}"}).status_code == 404
        )
    finally:
        node.dispose()


def test_the_logging_and_metrics_settings_survive_a_rewrite_of_node_toml(tmp_path: Path) -> None:
    from node.core.settings import load_settings, write_config

    init_node(tmp_path / "w", "w.alliance.example", log_format="json", log_level="WARNING", metrics=False)
    settings = load_settings(tmp_path / "w")
    write_config(settings)  # what `peers add` does
    again = load_settings(tmp_path / "w")
    assert (again.log_format, again.log_level, again.metrics) == ("json", "WARNING", False)


def test_an_unexpected_error_is_a_500_problem_that_names_the_request(node: Node, lines: io.StringIO) -> None:
    app = create_app(node)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("kaput")

    r = TestClient(app, raise_server_exceptions=False).get("/boom", headers={"X-Request-ID": "req-boom-0001"})
    assert r.status_code == 500
    assert r.headers["x-request-id"] == "req-boom-0001"
    assert r.json()["http_request_id"] == "req-boom-0001"
    [error] = [x for x in _json_lines(lines) if x["level"] == "ERROR"]
    assert error["request_id"] == "req-boom-0001"
