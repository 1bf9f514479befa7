"""The audit index by pseudonym: access requests see every event about a member without a full scan."""

from __future__ import annotations

import threading

from compliance.audit import Actor, AuditEvent, AuditTrail
from compliance.audit_index import AuditIndex
from node.runtime import Node

A, B = "a" * 32, "b" * 32


def _append(node: Node, subjects: list[str], actor: str | None = None) -> int:
    who = Actor(type="member", id=actor, role="member") if actor else Actor(type="service", id="n", role="node")
    event = AuditEvent(node_id="n.example", actor=who, action="pi.read", subject_pseudo_ids=subjects)
    return AuditTrail(node.store.log("audit"), "n.example").record_many([event])


def _full_scan(node: Node, pseudonym: str) -> list[int]:
    trail = AuditTrail(node.store.log("audit"), "n.example")
    return [i for i, e in trail.events() if pseudonym in e.subject_pseudo_ids or e.actor.id == pseudonym]


def test_the_index_finds_exactly_what_a_full_scan_finds(node: Node) -> None:
    for subjects, actor in [([A], None), ([B], None), ([A, B], None), ([], A), ([B], B)]:
        _append(node, subjects, actor)
    index = AuditIndex(node.store.engine, node.store.log("audit"))
    for p in (A, B):
        found = [i for i, _ in index.about(p)]
        assert found == _full_scan(node, p)
        assert len(found) == 3  # each pseudonym is in three of the five events, as subject or as actor


def test_an_event_appended_after_the_last_query_is_found_at_once(node: Node) -> None:
    index = AuditIndex(node.store.engine, node.store.log("audit"))
    _append(node, [A])
    assert len(list(index.about(A))) == 1
    late = _append(node, [A])  # appended straight to the log, as after a crash before indexing
    assert [i for i, _ in index.about(A)][-1] == late


def test_nothing_new_means_no_work(node: Node) -> None:
    index = AuditIndex(node.store.engine, node.store.log("audit"))
    _append(node, [A])
    assert index.catch_up() == 1
    assert index.catch_up() == 0


def test_concurrent_catch_ups_index_each_event_once(node: Node) -> None:
    for _ in range(200):
        _append(node, [A, B])
    index = AuditIndex(node.store.engine, node.store.log("audit"))
    errors: list[Exception] = []

    def run() -> None:
        try:
            AuditIndex(node.store.engine, node.store.log("audit")).catch_up()
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert len(list(index.about(A))) == 200


def test_access_requests_use_the_index(node: Node) -> None:
    from compliance_fixtures import notice_data

    from compliance.notices import parse_notice

    node.consent.publish_notice(parse_notice(notice_data()))
    node.consent.register_member("M-1")
    pseudonym = node.keyring.pseudonym("M-1", create=False)
    _append(node, [pseudonym])
    events = node.rights.access("M-1")["audit_events"]
    assert [e["index"] for e in events] == _full_scan(node, pseudonym)[: len(events)]
