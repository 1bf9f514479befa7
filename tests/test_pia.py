"""Impact assessments (PIPL Art. 55-56): content, four-eyes approval, expiry, the feature switches, the report."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from compliance.audit import AuditEvent
from compliance.egress import Mechanism
from compliance.pia import Assessment, Feature, PiaRecord, PiaRefused, Status, check_feature
from compliance.pia_report import PIPO_THRESHOLD, ReportFacts, document, to_html, to_markdown
from node.cli.main import app
from node.core.auth import Role
from node.core.datadir import init_node
from node.runtime import Node

EXAMPLE = Path(__file__).parents[1] / "compliance" / "data" / "pia_example.toml"
T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
runner = CliRunner()


def assessment(**changes: object) -> Assessment:
    data = tomllib.loads(EXAMPLE.read_text()) | changes
    return Assessment.model_validate(data)


def approved(features: tuple[str, ...] = ("points_exchange", "joint_modeling"), days: int = 365) -> PiaRecord:
    return PiaRecord("pia-1", assessment(features=list(features), valid_days=days), "ann", T0, "bo", T0)


def audit_actions(node: Node) -> list[str]:
    return [AuditEvent.from_bytes(e.data).action for e in node.store.log("audit").entries()]


# --- content -------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["legitimacy", "necessity", "impact", "measures", "risk_level", "likelihood"])
def test_an_assessment_missing_a_required_part_is_rejected(missing: str) -> None:
    data = tomllib.loads(EXAMPLE.read_text())
    del data[missing]
    with pytest.raises(ValidationError, match=missing):
        Assessment.model_validate(data)


def test_a_feature_needs_its_purpose_among_the_assessed_purposes() -> None:
    with pytest.raises(ValidationError, match="cross_border"):
        assessment(features=["cross_border"])


def test_an_unknown_purpose_is_rejected() -> None:
    with pytest.raises(ValidationError, match="astrology"):
        assessment(purposes=["astrology", "joint_modeling"], features=["joint_modeling"])


def test_an_approval_cannot_run_longer_than_a_year() -> None:
    with pytest.raises(ValidationError, match="valid_days"):
        assessment(valid_days=400)


def test_the_hash_pins_the_content() -> None:
    assert assessment().sha256 == assessment().sha256
    assert assessment(risk_level="high").sha256 != assessment().sha256


# --- pure rules ----------------------------------------------------------------------------


def test_an_approval_expires_after_its_validity() -> None:
    rec = approved(days=30)
    assert rec.status(T0 + timedelta(days=29)) is Status.APPROVED
    assert rec.status(T0 + timedelta(days=30)) is Status.EXPIRED


def test_records_are_kept_at_least_three_years() -> None:
    assert approved().retain_until >= (T0 + timedelta(days=3 * 365)).date()


@pytest.mark.parametrize(
    ("record", "now", "reason"),
    [
        (None, T0, "no_pia"),
        (PiaRecord("pia-1", assessment(), "ann", T0), T0, "pia_not_approved"),
        (approved(days=10), T0 + timedelta(days=11), "pia_expired"),
        (approved(features=("joint_modeling",)), T0, "pia_does_not_cover"),
    ],
)
def test_a_feature_stays_off_without_an_approved_unexpired_covering_assessment(
    record: PiaRecord | None, now: datetime, reason: str
) -> None:
    with pytest.raises(PiaRefused) as info:
        check_feature(Feature.POINTS_EXCHANGE, record, now)
    assert info.value.reason == reason


# --- service -------------------------------------------------------------------------------


def test_the_author_cannot_approve_their_own_assessment(node: Node) -> None:
    rec = node.pia.submit(assessment(), "ann")
    with pytest.raises(PiaRefused, match="someone else") as info:
        node.pia.approve(rec.pia_id, "ann")
    assert info.value.reason == "four_eyes"
    assert node.pia.get(rec.pia_id).approved_at is None


def test_an_assessment_is_approved_once(node: Node) -> None:
    rec = node.pia.submit(assessment(), "ann")
    node.pia.approve(rec.pia_id, "bo")
    with pytest.raises(PiaRefused, match="approved by bo"):
        node.pia.approve(rec.pia_id, "cy")


def test_submission_and_approval_are_audited_with_the_hash(node: Node) -> None:
    rec = node.pia.submit(assessment(), "ann")
    node.pia.approve(rec.pia_id, "bo")
    events = [AuditEvent.from_bytes(e.data) for e in node.store.log("audit").entries()]
    assert [e.action for e in events] == ["pia.submitted", "pia.approved"]
    assert {e.details["sha256"] for e in events} == {assessment().sha256}


def test_enabling_a_feature_without_an_approved_assessment_is_refused_and_audited(node: Node) -> None:
    rec = node.pia.submit(assessment(), "ann")
    with pytest.raises(PiaRefused):
        node.pia.enable(Feature.POINTS_EXCHANGE, rec.pia_id, "olga")
    assert audit_actions(node)[-1] == "feature.enable"
    assert node.pia.switches()[Feature.POINTS_EXCHANGE][0] is False


def test_a_feature_is_on_under_an_approved_assessment_and_off_when_it_expires(node: Node) -> None:
    rec = node.pia.submit(assessment(valid_days=30), "ann")
    node.pia.approve(rec.pia_id, "bo", now=T0)
    node.pia.enable(Feature.JOINT_MODELING, rec.pia_id, "olga", now=T0 + timedelta(days=1))
    node.pia.require(Feature.JOINT_MODELING, now=T0 + timedelta(days=29))
    with pytest.raises(PiaRefused) as info:
        node.pia.require(Feature.JOINT_MODELING, now=T0 + timedelta(days=31))
    assert info.value.reason == "pia_expired"
    assert audit_actions(node)[-1] == "gate.denied"


def test_every_feature_is_off_by_default(node: Node) -> None:
    assert not any(on for on, _, _ in node.pia.switches().values())
    for feature in Feature:
        with pytest.raises(PiaRefused, match="is off"):
            node.pia.require(feature)


def test_switching_off_takes_effect_at_the_next_use(node: Node) -> None:
    rec = node.pia.submit(assessment(), "ann")
    node.pia.approve(rec.pia_id, "bo")
    node.pia.enable(Feature.POINTS_EXCHANGE, rec.pia_id, "olga")
    node.pia.require(Feature.POINTS_EXCHANGE)
    node.pia.disable(Feature.POINTS_EXCHANGE, "olga")
    with pytest.raises(PiaRefused):
        node.pia.require(Feature.POINTS_EXCHANGE)


# --- report --------------------------------------------------------------------------------


def facts(**changes: object) -> ReportFacts:
    base: dict[str, object] = dict(
        generated_at=T0,
        node_id="cafe.example",
        display_name="Cafe",
        region="CN",
        allowed_regions=("CN",),
        peers=(),
        notice_version=1,
        notice_sha256="ab" * 32,
        pipo_contact="pipo@cafe.example",
        members=10,
        consents={"marketing": 4, "points_exchange:air.example": 3},
        xborder_year=2026,
        xborder_general=0,
        xborder_sensitive=0,
        xborder_required=Mechanism.NONE,
        mechanisms=(),
        assessments=(approved(),),
        switches={f: (False, None, "switched_off") for f in Feature},
    )
    return ReportFacts(**(base | changes))  # type: ignore[arg-type]


def test_the_report_states_the_data_map_counters_and_assessments() -> None:
    md = to_markdown(document(facts(), "en"))
    assert "cafe.example" in md
    assert "| marketing | consent | general | contact.basic, derived.scores | 4 |" in md
    assert "air.example: 3" in md
    assert "pia-1: " in md
    assert "(approved)" in md
    assert "| points_exchange | off | - | switched off |" in md


def test_the_report_raises_the_pipo_alert_at_one_million_members() -> None:
    assert "ALERT" not in to_markdown(document(facts(members=PIPO_THRESHOLD - 1), "en"))
    assert "ALERT, appoint a PIPO" in to_markdown(document(facts(members=PIPO_THRESHOLD), "en"))


def test_the_report_is_written_in_chinese_by_default() -> None:
    md = to_markdown(document(facts(members=PIPO_THRESHOLD)))
    assert md.startswith("# 个人信息保护影响评估报告：")
    assert "## 二、数据映射" in md
    assert "| points_exchange | 关闭 | - | switched off |" in md
    assert "警示，须指定个人信息保护负责人" in md


def test_the_chinese_and_english_reports_state_the_same_facts() -> None:
    zh, en = (to_markdown(document(facts(), lang)) for lang in ("zh-CN", "en"))
    assert zh.count("\n") == en.count("\n")  # the same blocks, rows and lines
    for fact in ("cafe.example", "air.example: 3", "pia-1: ", "contact.basic, derived.scores"):
        assert fact in zh
        assert fact in en


def test_the_report_refuses_a_language_it_is_not_written_in() -> None:
    with pytest.raises(ValueError, match="zh-CN or en"):
        document(facts(), "fr")


def test_the_html_report_escapes_everything() -> None:
    page = to_html(document(facts(display_name="<script>alert(1)</script>")))
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert page.startswith('<!DOCTYPE html>\n<html lang="zh-CN">')


# --- command line --------------------------------------------------------------------------


def test_the_cli_runs_submit_approve_enable_and_report(tmp_path: Path) -> None:
    d = tmp_path / "n"
    init_node(d, "n.example")
    n = Node.open(d)
    n.staff_keys.issue("ann", Role.COMPLIANCE)
    n.staff_keys.issue("bo", Role.COMPLIANCE)
    n.staff_keys.issue("olga", Role.OPERATOR)
    n.dispose()
    base = ["--data-dir", str(d)]
    r = runner.invoke(app, ["pia", "submit", str(EXAMPLE), "--as", "ann", "--id", "pia-x", *base])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["feature", "enable", "points_exchange", "--pia", "pia-x", "--as", "olga", *base])
    assert r.exit_code == 1
    assert "pia_not_approved" in r.output
    r = runner.invoke(app, ["pia", "approve", "pia-x", "--as", "ann", *base])
    assert r.exit_code == 1
    assert "four_eyes" in r.output
    assert runner.invoke(app, ["pia", "approve", "pia-x", "--as", "bo", *base]).exit_code == 0
    r = runner.invoke(app, ["feature", "enable", "points_exchange", "--pia", "pia-x", "--as", "olga", *base])
    assert r.exit_code == 0, r.output
    listed = [line.split() for line in runner.invoke(app, ["feature", "list", *base]).output.splitlines()]
    assert ["points_exchange", "on", "pia-x", "approved_pia"] in listed
    assert runner.invoke(app, ["pia", "list", *base]).output.split()[:2] == ["pia-x", "approved"]
    r = runner.invoke(app, ["pia", "report", "--format", "html", "--out", str(tmp_path / "r.html"), *base])
    assert r.exit_code == 0, r.output
    assert "pia-x" in (tmp_path / "r.html").read_text()


def test_the_cli_refuses_an_approver_without_a_compliance_key(tmp_path: Path) -> None:
    d = tmp_path / "n"
    init_node(d, "n.example")
    r = runner.invoke(app, ["pia", "approve", "pia-x", "--as", "mallory", "--data-dir", str(d)])
    assert r.exit_code == 1
    assert "holds no active compliance key" in r.output


@pytest.mark.parametrize(
    "args",
    [
        ["pia", "submit", "{tmp}/nope.toml", "--as", "ann"],
        ["pia", "submit", "{tmp}/bad.toml", "--as", "ann"],
        ["pia", "approve", "pia-missing", "--as", "ann"],
        ["pia", "report", "--format", "pdf"],
        ["feature", "enable", "telepathy", "--pia", "x", "--as", "ann"],
        [
            *[
                "xborder",
                "mechanism",
                "--country",
                "SG",
                "--kind",
                "none",
                "--reference",
                "r",
                "--valid-until",
                "2027-01-01",
                "--as",
                "ann",
            ]
        ],
    ],
)
def test_bad_input_gets_one_clear_line(tmp_path: Path, args: list[str]) -> None:
    d = tmp_path / "n"
    init_node(d, "n.example")
    n = Node.open(d)
    n.staff_keys.issue("ann", Role.COMPLIANCE)
    n.dispose()
    (tmp_path / "bad.toml").write_text('title = "x"\nfeatures = [')
    r = runner.invoke(app, [a.format(tmp=tmp_path) for a in args] + ["--data-dir", str(d)])
    assert r.exit_code != 0
    assert "error:" in r.output
    assert "Traceback" not in r.output


# --- HTTP API ------------------------------------------------------------------------------


def test_the_api_enforces_four_eyes_and_gates_the_switch(node: Node) -> None:
    from fastapi.testclient import TestClient

    from node.api.app import create_app

    client = TestClient(create_app(node), raise_server_exceptions=False)

    def as_(name: str, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {node.staff_keys.issue(name, role)}"}

    ann, bo, olga = as_("ann", Role.COMPLIANCE), as_("bo", Role.COMPLIANCE), as_("olga", Role.OPERATOR)
    body = {"id": "pia-api", "assessment": tomllib.loads(EXAMPLE.read_text())}
    assert client.post("/v1/pia", json=body, headers=ann).status_code == 201
    switch = {"enabled": True, "pia_id": "pia-api"}
    r = client.put("/v1/features/joint_modeling", json=switch, headers=olga)
    assert r.status_code == 409
    assert r.json()["reason_code"] == "pia_not_approved"
    r = client.post("/v1/pia/pia-api/approval", headers=ann)
    assert r.status_code == 403
    assert r.json()["reason_code"] == "four_eyes"
    assert client.post("/v1/pia/pia-api/approval", headers=bo).json()["status"] == "approved"
    assert client.put("/v1/features/joint_modeling", json=switch, headers=olga).json()["on"] is True
    assert client.post("/v1/pia/nope/approval", headers=bo).status_code == 404
    page = client.get("/v1/pia/report?format=html", headers=bo)
    assert page.headers["content-type"].startswith("text/html")
    assert "pia-api" in page.text
