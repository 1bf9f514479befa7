"""A joint handler's notice survives a SIGKILL of the node receiving it: the sender's recovery passes retry
it until acknowledged, and the receiver records it (and withdraws the purpose) exactly once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from exchange_fixtures import Pair, build_pair

from compliance.consent import ConsentAction
from compliance.joint import NoticeState
from compliance.service import ConsentChange

pytestmark = pytest.mark.slow

MEMBER = "m-1"


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    p = build_pair(tmp_path, [MEMBER], fault_files=True)
    for key, other in (("airline", p.destination.node_id), ("shop", p.source.node_id)):
        p.node(key).consent.change_many(
            [ConsentChange(MEMBER, ("joint_modeling", f"joint_modeling:{other}"), ConsentAction.GRANT)]
        )
    yield p
    p.close()


def wait_for(condition, seconds: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.2)


@pytest.mark.parametrize("point", ["joint.before_record", "joint.after_record"])
def test_a_notice_survives_a_sigkill_of_the_receiver_and_is_recorded_once(pair: Pair, point: str) -> None:
    (pair.base / "shop.faults").write_text(point)
    air, shop = pair.node("airline"), pair.node("shop")
    air.consent.change(MEMBER, ["joint_modeling"], ConsentAction.WITHDRAW)  # the airline server delivers it
    wait_for(lambda: pair.servers["shop"].proc.poll() is not None)  # killed while taking the notice
    [sent] = air.joint.store.sent()
    assert sent.state is NoticeState.PENDING
    pair.servers["shop"].start()
    wait_for(lambda: air.joint.store.sent()[0].state is NoticeState.COMPLETED)  # retried by a recovery pass
    assert len(shop.joint.store.received()) == 1
    withdrawals = [
        r for r in shop.consent.store.history(shop.consent.member_pseudonym(MEMBER)) if r.actor.startswith("joint:")
    ]
    assert [r.purpose_code for r in withdrawals] == ["joint_modeling"]
    assert not shop.consent.decisions(MEMBER)["joint_modeling"].allowed
