"""Retention (PIPL Art. 19, 47): expired records are purged automatically; a legal hold survives."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from compliance_fixtures import notice_data

from compliance.audit import AuditEvent
from compliance.consent import ConsentAction
from compliance.notices import parse_notice
from compliance.rights_service import RequestRefused
from node.core.datadir import init_node
from node.runtime import Node

LATER = datetime.now(UTC) + timedelta(days=4 * 366)  # time travel: four years on


@pytest.fixture
def members(node: Node) -> dict[str, str]:
    """Three members who allowed marketing under the test notice (one to erase, one to hold, one who stays),
    their pseudonyms by reference."""
    node.consent.publish_notice(parse_notice(notice_data()))
    for m in ("GONE", "HELD", "STAYS"):
        node.consent.register_member(m)
        node.consent.change(m, ["marketing"], ConsentAction.GRANT)
    return {m: node.keyring.pseudonym(m, create=False) for m in ("GONE", "HELD", "STAYS")}


def _consent_rows(node: Node, member_ref_pseudonym: str) -> int:
    return len(node.consent.store.history(member_ref_pseudonym))


def test_consent_records_of_an_erased_member_are_purged_after_three_years(node: Node, members: dict[str, str]) -> None:
    gone, stays = members["GONE"], members["STAYS"]
    node.rights.erase("GONE")
    assert node.retention.purge(datetime.now(UTC)).consent_records == 0  # not yet: evidence is kept 3 years
    report = node.retention.purge(LATER)
    assert report.consent_records == 1
    assert _consent_rows(node, gone) == 0
    assert _consent_rows(node, stays) == 1  # a live member's history is never purged


def test_a_legal_hold_survives_the_purge_until_released(node: Node, members: dict[str, str]) -> None:
    held = members["HELD"]
    node.rights.erase("HELD")
    node.retention.hold(held, "court order 2026-001", "chen")
    report = node.retention.purge(LATER)
    assert _consent_rows(node, held) == 1
    assert report.held_members_skipped >= 1
    assert node.retention.release(held, "chen")
    node.retention.purge(LATER)
    assert _consent_rows(node, held) == 0


def test_finished_rights_requests_are_purged_after_three_years(node: Node, members: dict[str, str]) -> None:
    node.rights.access("STAYS")
    assert len(node.rights.requests("STAYS")) == 1
    node.retention.purge(LATER)
    assert node.rights.requests("STAYS") == []


def test_cross_border_counts_are_kept_three_years_after_their_year(node: Node) -> None:
    node.xborder.add({"a" * 32}, False, date(LATER.year - 4, 6, 1))
    node.xborder.add({"b" * 32}, False, date(LATER.year - 3, 6, 1))
    assert node.retention.purge(LATER).xborder_counts == 1
    assert node.xborder.counts(LATER.year - 3) == (1, 0)


def test_a_dry_run_deletes_nothing_and_a_purge_is_audited(node: Node, members: dict[str, str]) -> None:
    node.rights.erase("GONE")
    assert node.retention.purge(LATER, dry_run=True).consent_records == 1
    assert node.retention.purge(LATER, dry_run=True).consent_records == 1
    node.retention.purge(LATER)
    last = AuditEvent.from_bytes(list(node.store.log("audit").entries())[-1].data)
    assert last.action == "retention.purge"
    assert last.details["consent_records"] == 1


def test_erasure_is_refused_while_a_hold_is_placed_on_the_pseudonym(node: Node, members: dict[str, str]) -> None:
    node.retention.hold(members["HELD"], "regulator inquiry", "chen")
    with pytest.raises(RequestRefused) as info:
        node.rights.erase("HELD")
    assert info.value.reason == "legal_hold"


def test_a_hold_needs_a_reason(node: Node) -> None:
    with pytest.raises(ValueError, match="reason"):
        node.retention.hold("c" * 32, "  ", "chen")


def test_the_purge_never_touches_the_audit_log(node: Node, members: dict[str, str]) -> None:
    before = node.store.log("audit").size
    node.rights.erase("GONE")
    node.retention.purge(LATER)
    assert node.store.log("audit").size == before + 4  # erasure's received/verified/completed + purge event


def test_the_cli_holds_purges_and_releases(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from node.cli.main import app
    from node.core.auth import Role

    d = tmp_path / "n"
    init_node(d, "n.example")
    n = Node.open(d)
    n.staff_keys.issue("chen", Role.COMPLIANCE)
    n.consent.publish_notice(parse_notice(notice_data()))
    n.consent.register_member("M-1")
    n.dispose()
    run = CliRunner().invoke
    base = ["--data-dir", str(d)]
    r = run(app, ["retention", "hold", "--member", "M-1", "--reason", "case 7", "--as", "chen", *base])
    assert r.exit_code == 0, r.output
    assert "0 consent records" in run(app, ["retention", "purge", "--dry-run", *base]).output
    assert run(app, ["retention", "release", "--member", "M-1", "--as", "chen", *base]).exit_code == 0
    r = run(app, ["retention", "release", "--member", "M-1", "--as", "chen", *base])
    assert r.exit_code == 1
    assert "no active hold" in r.output
    r = run(app, ["retention", "hold", "--reason", "x", "--as", "chen", *base])
    assert r.exit_code == 1
    assert "--member" in r.output
