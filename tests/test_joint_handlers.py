"""Joint handlers (PIPL-ROLE-01): a member's withdrawal, correction or erasure at one brand for a purpose
the alliance runs jointly reaches every other handler by signed peer calls, is tracked to completion
on both sides with the 15-working-day clock, retried until acknowledged, and recorded once."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from compliance.consent import ConsentAction, ConsentRecord
from compliance.joint import NoticeKind, NoticeState, notice_id, plan_withdrawals, withdrawals_for
from node.api.app import create_app
from node.core.refusals import Refused
from node.demo.vertical import connect, shared_brands
from node.peers.registry import Registry
from node.runtime import Node

PERSON = 40  # a member of all three brands


@pytest.fixture(autouse=True)
def _quiet_flower() -> None:
    logging.getLogger("flwr").setLevel(logging.WARNING)


@pytest.fixture
def trio(tmp_path: Path) -> Iterator[dict[str, Node]]:
    nodes = shared_brands(tmp_path, ("airline", "shop", "coffee"), 60, 30)
    for a, b in (("airline", "shop"), ("airline", "coffee"), ("shop", "coffee")):
        link(nodes[a], nodes[b], PERSON)
    for node in nodes.values():
        node.alignment.minimum = 20  # a small alliance: runs of 60 shared members are allowed
    yield nodes
    for node in nodes.values():
        node.dispose()


def ref(node: Node, person: int = PERSON) -> str:
    return f"{node.settings.node_id}:{person}"


def link(a: Node, b: Node, person: int) -> None:
    """Link the person's accounts at ``a`` and ``b`` with a code, over a signed call (as members do)."""
    code = b.linking.link_code(ref(b, person), a.settings.node_id)
    a.linking.link_with(ref(a, person), b.settings.node_id, code)


def member(node: Node, person: int = PERSON) -> str:
    return node.consent.member_pseudonym(ref(node, person))


def withdrawn(node: Node, purpose: str, person: int = PERSON) -> bool:
    return not node.consent.decisions(ref(node, person))[purpose].allowed


def joint_records(node: Node, person: int = PERSON) -> list[ConsentRecord]:
    return [r for r in node.consent.store.history(member(node, person)) if r.actor.startswith("joint:")]


# --- the pure rules --------------------------------------------------------------------------------------


def test_a_notice_planned_twice_for_the_same_change_is_the_same_notice() -> None:
    assert notice_id("consent-1", "shop") == notice_id("consent-1", "shop") != notice_id("consent-1", "coffee")


def test_the_receiver_withdraws_the_joint_purpose_or_the_separate_consent_for_the_sender() -> None:
    assert withdrawals_for(NoticeKind.WITHDRAWAL, "joint_modeling", "air", "shop") == ["joint_modeling"]
    assert withdrawals_for(NoticeKind.WITHDRAWAL, "joint_modeling:shop", "air", "shop") == ["joint_modeling:air"]
    assert withdrawals_for(NoticeKind.WITHDRAWAL, "joint_modeling:cafe", "air", "shop") == []  # not about us
    assert withdrawals_for(NoticeKind.ERASURE, "joint_modeling", "air", "shop") == ["joint_modeling:air"]
    assert withdrawals_for(NoticeKind.CORRECTION, "joint_modeling", "air", "shop") == []


def test_a_change_made_on_a_notice_plans_no_notice_of_its_own() -> None:
    at = datetime.now(UTC)
    record = ConsentRecord("m" * 32, "joint_modeling", ConsentAction.WITHDRAW, 1, "0" * 64, at, actor="joint:air")
    assert plan_withdrawals([record], lambda _p: ["shop"], lambda _m: {"shop": "L1"}) == []


def test_a_joint_purpose_naming_a_brand_outside_the_registry_is_refused(trio: dict[str, Node]) -> None:
    raw = trio["airline"].registry.registry.model_dump(mode="json")
    raw["joint"][0]["handlers"].append("stranger.example")
    with pytest.raises(ValidationError, match="not among the brands"):
        Registry.model_validate(raw)


# --- withdrawal ------------------------------------------------------------------------------------------


def test_withdrawing_a_joint_purpose_writes_a_notice_to_each_linked_handler_with_the_change(
    trio: dict[str, Node],
) -> None:
    air = trio["airline"]
    air.consent.change(ref(air), ["joint_modeling"], ConsentAction.WITHDRAW)
    sent = air.joint.store.sent(member(air))
    assert sorted(s.peer for s in sent) == sorted(trio[k].settings.node_id for k in ("shop", "coffee"))
    assert all(s.state is NoticeState.PENDING and s.kind is NoticeKind.WITHDRAWAL for s in sent)
    today = datetime.now(UTC).date()
    assert all(today + timedelta(days=19) <= s.due <= today + timedelta(days=21) for s in sent)  # 15 working days


def test_one_recovery_pass_delivers_the_withdrawal_and_every_handler_records_it(trio: dict[str, Node]) -> None:
    air = trio["airline"]
    air.consent.change(ref(air), ["joint_modeling"], ConsentAction.WITHDRAW)
    air.exchange_recovery.recover()
    assert all(s.state is NoticeState.COMPLETED and s.link_id is None for s in air.joint.store.sent())
    for key in ("shop", "coffee"):
        node = trio[key]
        assert withdrawn(node, "joint_modeling")
        [got] = node.joint.store.received()
        assert (got.sender, got.state, got.member) == (air.settings.node_id, NoticeState.COMPLETED, member(node))
        others = [n.settings.node_id for k, n in trio.items() if k != key]
        assert all(member(node) not in node.consent.cross_brand_cohort(o) for o in others)


def test_a_change_made_on_a_notice_sends_nothing_further(trio: dict[str, Node]) -> None:
    air = trio["airline"]
    air.consent.change(ref(air), ["joint_modeling"], ConsentAction.WITHDRAW)
    air.exchange_recovery.recover()
    assert trio["shop"].joint.store.sent() == []
    assert trio["coffee"].joint.store.sent() == []


def test_a_notice_delivered_twice_is_recorded_once_and_answered_alike(trio: dict[str, Node]) -> None:
    air, shop = trio["airline"], trio["shop"]
    air.consent.change(ref(air), ["joint_modeling"], ConsentAction.WITHDRAW)
    [sent] = [s for s in air.joint.store.sent() if s.peer == shop.settings.node_id]
    body = {
        "notice_id": sent.notice_id,
        "kind": "withdrawal",
        "purpose": sent.purpose,
        "link_id": sent.link_id,
        "fields": [],
        "due": sent.due.isoformat(),
    }
    first = shop.joint.on_notice(air.settings.node_id, body)
    again = shop.joint.on_notice(air.settings.node_id, body)
    assert first == again
    assert len(shop.joint.store.received()) == 1
    assert len(joint_records(shop)) == 1


def test_withdrawing_the_separate_consent_for_one_brand_tells_that_brand_only(trio: dict[str, Node]) -> None:
    air, shop = trio["airline"], trio["shop"]
    air.consent.change(ref(air), [f"joint_modeling:{shop.settings.node_id}"], ConsentAction.WITHDRAW)
    air.exchange_recovery.recover()
    assert [s.peer for s in air.joint.store.sent()] == [shop.settings.node_id]
    assert withdrawn(shop, f"joint_modeling:{air.settings.node_id}")
    assert not withdrawn(shop, "joint_modeling")  # only the pair's run is off
    assert trio["coffee"].joint.store.received() == []


def test_a_member_not_linked_with_a_handler_sets_off_no_notice_to_it(trio: dict[str, Node]) -> None:
    air = trio["airline"]
    air.consent.change(ref(air, 41), ["joint_modeling"], ConsentAction.WITHDRAW)
    assert air.joint.store.sent() == []


# --- erasure and correction ------------------------------------------------------------------------------


def test_erasure_ends_the_members_links_and_alignments_at_the_other_handlers(trio: dict[str, Node]) -> None:
    air, shop = trio["airline"], trio["shop"]
    run = f"{shop.settings.node_id}/before"
    shop.alignment.align(air.settings.node_id, run)
    assert member(shop) in shop.alignment.store.load(run).values()
    gone = member(air)
    air.rights.erase(ref(air))
    air.exchange_recovery.recover()
    assert {s.kind for s in air.joint.store.sent(gone)} == {NoticeKind.ERASURE}
    assert shop.links.link_of(member(shop), air.settings.node_id) is None
    assert shop.links.link_of(member(shop), trio["coffee"].settings.node_id) is not None  # others untouched
    assert member(shop) not in shop.alignment.store.load(run).values()
    assert withdrawn(shop, f"joint_modeling:{air.settings.node_id}")


def test_a_corrected_phone_reaches_the_handlers_and_stays_open_there_until_checked(trio: dict[str, Node]) -> None:
    air, coffee = trio["airline"], trio["coffee"]
    air.rights.correct(ref(air), phone="+86 139 9999 0040")
    air.exchange_recovery.recover()
    [got] = coffee.joint.store.received()
    assert (got.kind, got.state, got.fields) == (NoticeKind.CORRECTION, NoticeState.OPEN, ("phone",))
    assert [r["notice"] for r in coffee.joint.queue()] == [got.notice_id]
    assert coffee.joint.complete(got.sender, got.notice_id)
    assert coffee.joint.queue() == []


def test_a_corrected_birth_date_tells_no_one_since_no_joint_purpose_uses_it(trio: dict[str, Node]) -> None:
    air = trio["airline"]
    air.rights.correct(ref(air), birth_date=datetime(1991, 2, 3).date())
    assert air.joint.store.sent() == []


# --- unreachable handlers, refusals, the queue ------------------------------------------------------------


def test_an_unreachable_handler_is_retried_later_and_escalated_past_the_due_date(trio: dict[str, Node]) -> None:
    air, coffee = trio["airline"], trio["coffee"]
    connect(air, {trio["shop"].settings.node_id: create_app(trio["shop"])})  # coffee cannot be reached
    air.consent.change(ref(air), ["joint_modeling"], ConsentAction.WITHDRAW)
    air.exchange_recovery.recover()
    [waiting] = [s for s in air.joint.store.sent() if s.state is NoticeState.PENDING]
    assert waiting.peer == coffee.settings.node_id
    assert waiting.attempts == 1
    assert waiting.last_error
    assert air.joint.store.due_for_delivery() == []  # not before its backoff
    assert [r["peer"] for r in air.joint.queue()] == [coffee.settings.node_id]
    assert air.joint.escalate(waiting.due + timedelta(days=1)) == 1
    assert any(
        e["action"] == "dsr.escalated" and e["dsr_id"] == waiting.notice_id for e in air.audit.about(member(air))
    )


def test_a_notice_for_a_purpose_the_two_do_not_run_jointly_is_refused(trio: dict[str, Node]) -> None:
    shop = trio["shop"]
    body = {
        "notice_id": "a" * 32,
        "kind": "withdrawal",
        "purpose": "marketing",
        "link_id": "x",
        "fields": [],
        "due": "2027-01-01",
    }
    with pytest.raises(Refused) as refused:
        shop.joint.on_notice(trio["airline"].settings.node_id, body)
    assert refused.value.reason == "not_a_joint_handler"


def test_a_notice_naming_no_member_here_is_acknowledged_as_not_linked(trio: dict[str, Node]) -> None:
    shop = trio["shop"]
    body = {
        "notice_id": "b" * 32,
        "kind": "withdrawal",
        "purpose": "joint_modeling",
        "link_id": "nobody",
        "fields": [],
        "due": "2027-01-01",
    }
    assert shop.joint.on_notice(trio["airline"].settings.node_id, body).state is NoticeState.NOT_LINKED


def test_an_access_request_lists_the_members_notices_both_ways(trio: dict[str, Node]) -> None:
    air, shop = trio["airline"], trio["shop"]
    air.consent.change(ref(air), ["joint_modeling"], ConsentAction.WITHDRAW)
    air.exchange_recovery.recover()
    assert {n["direction"] for n in air.rights.access(ref(air))["joint_notices"]} == {"sent"}
    assert [n["from"] for n in shop.rights.access(ref(shop))["joint_notices"]] == [air.settings.node_id]


def test_a_withdrawal_takes_the_member_out_of_runs_already_aligned_at_every_handler(trio: dict[str, Node]) -> None:
    air, shop = trio["airline"], trio["shop"]
    run = f"{shop.settings.node_id}/aligned"
    shop.alignment.align(air.settings.node_id, run)
    assert member(shop) in shop.alignment.store.load(run).values()
    assert member(air) in air.alignment.store.load(run).values()
    air.consent.change(ref(air), ["joint_modeling"], ConsentAction.WITHDRAW)
    assert member(air) not in air.alignment.store.load(run).values()  # at once, here
    air.exchange_recovery.recover()
    assert member(shop) not in shop.alignment.store.load(run).values()  # and there, with the notice


def test_a_correction_kept_open_there_stays_in_the_senders_queue_until_it_is_done(trio: dict[str, Node]) -> None:
    air, coffee = trio["airline"], trio["coffee"]
    air.rights.correct(ref(air), phone="+86 139 9999 0040")
    air.exchange_recovery.recover()
    open_there = [r for r in air.joint.queue() if r["peer"] == coffee.settings.node_id]
    assert [r["state"] for r in open_there] == ["open"]
    [got] = coffee.joint.store.received()
    coffee.joint.complete(got.sender, got.notice_id)
    air.joint.deliver(datetime.now(UTC) + timedelta(days=2))  # asked about again a day later
    assert [r for r in air.joint.queue() if r["peer"] == coffee.settings.node_id] == []
    [done] = [s for s in air.joint.store.sent() if s.peer == coffee.settings.node_id]
    assert done.state is NoticeState.COMPLETED
    assert done.link_id is None


def test_a_notice_that_arrives_late_keeps_the_due_date_the_member_was_given(trio: dict[str, Node]) -> None:
    air, shop = trio["airline"], trio["shop"]
    link_id = shop.links.link_of(member(shop), air.settings.node_id)
    body = {
        "notice_id": "c" * 32,
        "kind": "withdrawal",
        "purpose": "joint_modeling",
        "link_id": link_id,
        "fields": [],
        "due": "2026-01-05",
    }
    assert shop.joint.on_notice(air.settings.node_id, body).due.isoformat() == "2026-01-05"
