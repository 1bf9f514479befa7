"""Group commit: single earns and consent changes from concurrent requests commit together, each
request answered with its own result, and one refused request never refuses the others."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date

import pytest
from compliance_fixtures import notice_data

from compliance.audit import AuditTrail
from compliance.consent import ConsentAction
from compliance.notices import parse_notice
from compliance.service import UnknownMemberError
from node.core.auth import Caller, Role, current_caller
from node.runtime import Node

MEMBERS = [f"G-{i}" for i in range(6)]


@pytest.fixture
def node(node: Node) -> Node:
    node.consent.publish_notice(parse_notice(notice_data()))
    node.consent.register_members([(m, date(1990, 1, 1), None) for m in MEMBERS])
    return node


def _together(calls: list[Callable[[], object]]) -> list[object]:
    """Run ``calls`` in threads released at once; each one's result or error."""
    results: list[object] = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(i: int) -> None:
        start.wait(5)
        try:
            results[i] = calls[i]()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_single_earns_from_many_requests_each_get_their_own_entry(node: Node):
    calls = [
        (lambda m=m, i=i: node.loyalty.earn_purchase(m, f"till-{i}", 1000 * (i + 1), None))
        for i, m in enumerate(MEMBERS)
    ]
    calls.append(lambda: node.loyalty.earn_purchase("nobody", "till-x", 1000, None))
    results = _together(calls)
    assert [r.points for r in results[:-1]] == [10 * (i + 1) for i in range(len(MEMBERS))]
    assert isinstance(results[-1], UnknownMemberError)
    assert node.loyalty._earns.stats.items == len(calls)


def test_an_earn_retried_alone_gets_the_first_answer(node: Node):
    first = node.loyalty.earn_purchase(MEMBERS[0], "till-7", 5000, None)
    again = node.loyalty.earn_purchase(MEMBERS[0], "till-7", 5000, None)
    assert again.entry_id == first.entry_id


def test_consent_changes_from_many_members_each_get_a_receipt_and_their_own_actor(node: Node):
    def as_member(member: str, purpose: str) -> Callable[[], object]:
        def change() -> object:
            current_caller.set(Caller(Role.MEMBER, member))
            return node.consent_changes.change(member, [purpose], ConsentAction.GRANT)

        return change

    calls = [as_member(m, "marketing") for m in MEMBERS] + [as_member(MEMBERS[0], "no_such_purpose")]
    results = _together(calls)
    assert all(isinstance(r, str) for r in results[:-1]), results
    assert not isinstance(results[-1], str)
    for m in MEMBERS:
        assert node.consent.check(m, "marketing") is not None
    actors = {
        e.subject_pseudo_ids[0]: e.actor.id
        for _, e in AuditTrail(node.audit.log, node.settings.node_id).events()
        if e.action == "consent.grant"
    }
    assert actors == {node.consent.member_pseudonym(m): node.consent.member_pseudonym(m) for m in MEMBERS}
