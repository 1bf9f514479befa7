"""Incidents (PIPL-INC-01): complete notices to the authority and to individuals, within the four-hour clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from typer.testing import CliRunner

from compliance.audit import AuditEvent
from compliance.incidents import (
    REQUIRED,
    Grade,
    IncompleteNotice,
    authority_deadline,
    check_complete,
    drill,
    grade,
    render_text,
    within_deadline,
)
from node.cli.main import app
from node.core.auth import Role
from node.core.datadir import init_node
from node.runtime import Node

T0 = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)


def test_a_drill_produces_a_complete_notice_within_four_hours() -> None:
    incident, notices = drill(T0)
    assert incident.grade is Grade.RELATIVELY_MAJOR
    assert notices.deadline == T0 + timedelta(hours=4)
    assert within_deadline(notices)
    assert notices.individuals is not None
    for notice in (notices.authority, notices.individuals):
        check_complete(notice)
        text = render_text(notice)
        assert "contact.basic" in text
        assert "What you can do" in text


def test_a_notice_issued_after_four_hours_misses_the_deadline() -> None:
    _, notices = drill(T0, minutes_to_notice=241)
    assert not within_deadline(notices)


@pytest.mark.parametrize("field", REQUIRED)
def test_a_notice_missing_a_required_field_is_rejected_naming_it(field: str) -> None:
    _, notices = drill(T0)
    empty: object = () if isinstance(getattr(notices.authority, field), tuple) else " "
    with pytest.raises(IncompleteNotice, match=field):
        check_complete(notices.authority.model_copy(update={field: empty}))


def test_individual_notice_is_skipped_only_when_harm_was_avoided_and_says_why() -> None:
    incident, _ = drill(T0)
    with pytest.raises(ValidationError, match="harm_avoided_because"):
        incident.model_copy(update={"harm_avoided": True}).model_validate(
            incident.model_dump() | {"harm_avoided": True}
        )
    avoided = incident.model_validate(
        incident.model_dump() | {"harm_avoided": True, "harm_avoided_because": "the data was encrypted"}
    )
    from compliance.incidents import build_notices

    notices = build_notices(avoided, T0)
    assert notices.individuals is None
    assert notices.individuals_skipped_because == "the data was encrypted"


@pytest.mark.parametrize(
    ("affected", "sensitive", "expected"),
    [
        (99_999, False, Grade.GENERAL),
        (100_000, False, Grade.RELATIVELY_MAJOR),
        (9_999, True, Grade.GENERAL),
        (10_000, True, Grade.RELATIVELY_MAJOR),
        (1_000_000, False, Grade.MAJOR),
        (100_000, True, Grade.MAJOR),
        (10_000_000, False, Grade.ESPECIALLY_MAJOR),
    ],
)
def test_grading_thresholds(affected: int, sensitive: bool, expected: Grade) -> None:
    assert grade(affected, sensitive) is expected


def test_a_general_incident_has_no_four_hour_clock() -> None:
    incident, _ = drill(T0)
    assert authority_deadline(incident.model_copy(update={"affected": 10})) is None


def test_an_unknown_pi_category_is_rejected() -> None:
    incident, _ = drill(T0)
    with pytest.raises(ValidationError, match="unknown PI categories"):
        incident.model_validate(incident.model_dump() | {"pi_categories": ("shoe.size",)})


def test_sensitive_categories_make_the_incident_sensitive() -> None:
    incident, _ = drill(T0)
    moved = incident.model_validate(
        incident.model_dump() | {"pi_categories": ("location.precise",), "affected": 10_000}
    )
    assert moved.sensitive
    assert moved.grade is Grade.RELATIVELY_MAJOR


@given(st.integers(min_value=0, max_value=10**8), st.integers(min_value=0, max_value=10**8), st.booleans())
def test_grade_never_decreases_as_more_individuals_are_affected(a: int, b: int, sensitive: bool) -> None:
    low, high = sorted((a, b))
    assert list(Grade).index(grade(low, sensitive)) <= list(Grade).index(grade(high, sensitive))


def test_the_cli_drill_writes_both_notices_and_audits_detection_and_notification(tmp_path: Path) -> None:
    d = tmp_path / "n"
    init_node(d, "n.example")
    n = Node.open(d)
    n.staff_keys.issue("chen", Role.COMPLIANCE)
    n.dispose()
    r = CliRunner().invoke(
        app, ["incident", "drill", "--out", str(tmp_path / "out"), "--as", "chen", "--data-dir", str(d)]
    )
    assert r.exit_code == 0, r.output
    assert "within the 4-hour deadline" in " ".join(r.output.split())
    assert "PI categories involved" in (tmp_path / "out" / "authority.txt").read_text()
    assert (tmp_path / "out" / "individuals.txt").exists()
    n = Node.open(d)
    actions = [AuditEvent.from_bytes(e.data).action for e in n.store.log("audit").entries()]
    n.dispose()
    assert actions[-2:] == ["incident.detected", "incident.notified"]
