"""The audit outbox: a crash between a consent change and its audit event loses no event and duplicates none."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from compliance_fixtures import notice_data

from compliance import outbox
from compliance.audit import AuditEvent
from compliance.consent import ConsentAction
from compliance.notices import parse_notice
from node.core.auth import Caller, Role, current_caller
from node.core.datadir import init_node
from node.runtime import Node


class Crash(Exception):
    """Stands in for the process dying at this point."""


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    init_node(tmp_path / "n", "n.example")
    node = Node.open(tmp_path / "n")
    node.consent.publish_notice(parse_notice(notice_data()))
    node.consent.register_member("M-1")
    node.dispose()
    return tmp_path / "n"


def _events(node: Node, action: str) -> list[AuditEvent]:
    return [e for e in (AuditEvent.from_bytes(x.data) for x in node.store.log("audit").entries()) if e.action == action]


def test_a_crash_before_the_audit_append_is_repaired_on_the_next_open(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = Node.open(data_dir)
    token = current_caller.set(Caller(Role.MEMBER, "M-1"))
    monkeypatch.setattr(node.audit, "many", lambda events: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        node.consent.change("M-1", ["marketing"], ConsentAction.GRANT)
    current_caller.reset(token)
    pseudonym = node.keyring.pseudonym("M-1", create=False)
    assert len(node.consent.store.history(pseudonym)) == 1  # the change is stored...
    assert _events(node, "consent.grant") == []  # ...its event is not in the log yet
    node.dispose()
    node = Node.open(data_dir)  # recovery runs on open
    [event] = _events(node, "consent.grant")
    assert event.subject_pseudo_ids == (pseudonym,)
    assert event.actor.type == "member"  # the actor of the request that made the change
    assert outbox.pending(node.store.engine) == []
    node.dispose()


def test_a_crash_after_the_append_does_not_duplicate_the_event(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    node = Node.open(data_dir)
    monkeypatch.setattr(node.consent.store, "outbox_appended", lambda ids: (_ for _ in ()).throw(Crash()))
    with pytest.raises(Crash):
        node.consent.change("M-1", ["marketing", "personalization"], ConsentAction.GRANT)
    monkeypatch.undo()
    assert len(outbox.pending(node.store.engine)) == 2
    node.dispose()
    node = Node.open(data_dir)
    assert Counter(e.purpose_code for e in _events(node, "consent.grant")) == {"marketing": 1, "personalization": 1}
    assert outbox.pending(node.store.engine) == []
    node.dispose()


def test_recovery_after_a_clean_run_appends_nothing(data_dir: Path) -> None:
    node = Node.open(data_dir)
    node.consent.change("M-1", ["marketing"], ConsentAction.GRANT)
    assert node.audit.recover_outbox() == 0
    assert len(_events(node, "consent.grant")) == 1
    assert outbox.pending(node.store.engine) == []
    node.dispose()


def test_appended_events_leave_the_outbox_with_the_next_change(data_dir: Path) -> None:
    node = Node.open(data_dir)
    node.consent.change("M-1", ["marketing"], ConsentAction.GRANT)
    assert len(outbox.pending(node.store.engine)) == 1  # in the log already; cleared lazily
    node.consent.change("M-1", ["marketing"], ConsentAction.WITHDRAW)
    assert [f["purpose_code"] for _, f, _ in outbox.pending(node.store.engine)] == ["marketing"]
    assert len(outbox.pending(node.store.engine)) == 1
    node.dispose()


def test_a_rights_request_step_is_audited_exactly_once_across_a_crash(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = Node.open(data_dir)
    real = node.audit.many
    calls = {"n": 0}

    def crash_on_third(events):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:  # received, verified, then the completion step dies
            raise Crash
        return real(events)

    monkeypatch.setattr(node.audit, "many", crash_on_third)
    with pytest.raises(Crash):
        node.rights.access("M-1")
    node.dispose()
    node = Node.open(data_dir)
    steps = [e.action for e in (AuditEvent.from_bytes(x.data) for x in node.store.log("audit").entries())]
    assert Counter(a for a in steps if a.startswith("dsr."))["dsr.completed"] == 1
    node.dispose()
