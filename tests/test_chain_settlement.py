"""A node's settlement on chain: both sides' statement hashes confirm a pair; the window closes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from contracts.client import Alliance, Chain, ChainRefused
from node.chain.settlement import ChainSettlement, window_id
from node.settlement.service import PairStatements
from node.settlement.statements import Exchange, Window, reconcile, statement

T0 = datetime(2026, 11, 1, tzinfo=UTC)
W = Window(T0, T0 + timedelta(days=1))


def x(i: int, src: str, dst: str, credited: str) -> Exchange:
    return Exchange(f"x{i}", src, dst, 100, 50, Decimal(credited), Decimal(1), Decimal(0), T0 + timedelta(hours=i))


def pair(me: str, other: str, mine: list[Exchange], theirs: list[Exchange]) -> PairStatements:
    a, b = statement(me, other, mine, W), statement(other, me, theirs, W)
    return PairStatements(W, a, "sig", b, "sig", reconcile(a, b))


@pytest.fixture
def sides():  # type: ignore[no-untyped-def]
    chain = Chain.embedded()
    owner, air, shop = chain.accounts[:3]
    alliance = Alliance.deploy(chain, owner)
    alliance.add_brand(air, "air.example", owner)
    alliance.add_brand(shop, "shop.example", owner)
    return {
        "air": ChainSettlement(chain, alliance.settlement, alliance.registry, air),
        "shop": ChainSettlement(chain, alliance.settlement, alliance.registry, shop),
    }


def test_both_sides_posting_agreeing_statements_confirm_the_pair_and_the_window_closes(sides) -> None:  # type: ignore[no-untyped-def]
    both = [x(1, "air.example", "shop.example", "450")]
    assert sides["air"].post(pair("air.example", "shop.example", both, both)) == "one_side"
    assert sides["shop"].post(pair("shop.example", "air.example", both, both)) == "confirmed"
    sides["shop"].close(W, {"air.example": -450, "shop.example": 450})
    assert sides["air"].settlement.functions.closed(window_id(W)).call()


def test_disagreeing_statements_dispute_and_the_window_stays_open(sides) -> None:  # type: ignore[no-untyped-def]
    ours, theirs = [x(1, "air.example", "shop.example", "450")], [x(1, "air.example", "shop.example", "451")]
    sides["air"].post(pair("air.example", "shop.example", ours, theirs))
    assert sides["shop"].post(pair("shop.example", "air.example", theirs, ours)) == "disputed"
    with pytest.raises(ChainRefused, match="open dispute"):
        sides["air"].close(W, {"air.example": -450, "shop.example": 450})


def test_a_counterpart_the_chain_does_not_know_is_a_clear_error(sides) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(LookupError, match=r"cafe\.example is not registered on chain"):
        sides["air"].post(pair("air.example", "cafe.example", [], []))
