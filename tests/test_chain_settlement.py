"""A node's settlement on chain: both sides' statement hashes confirm a pair; the window closes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from contracts.client import Alliance, Chain, ChainRefused
from node.chain.settlement import ChainSettlement, complete_positions, window_id
from node.settlement.service import PairStatements
from node.settlement.statements import Exchange, Window, reconcile, statement

T0 = datetime(2026, 11, 1, tzinfo=UTC)
W = Window(T0, T0 + timedelta(days=1))
BRANDS = ["air.example", "shop.example"]


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
    sides["shop"].close(W, {"air.example": -450, "shop.example": 450}, BRANDS)
    assert sides["air"].settlement.functions.closed(window_id(W)).call()


def test_disagreeing_statements_dispute_and_the_window_stays_open(sides) -> None:  # type: ignore[no-untyped-def]
    ours, theirs = [x(1, "air.example", "shop.example", "450")], [x(1, "air.example", "shop.example", "451")]
    sides["air"].post(pair("air.example", "shop.example", ours, theirs))
    assert sides["shop"].post(pair("shop.example", "air.example", theirs, ours)) == "disputed"
    with pytest.raises(ChainRefused, match="open dispute"):
        sides["air"].close(W, {"air.example": -450, "shop.example": 450}, BRANDS)


def test_a_counterpart_the_chain_does_not_know_is_a_clear_error(sides) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(LookupError, match=r"cafe\.example is not registered on chain"):
        sides["air"].post(pair("air.example", "cafe.example", [], []))


def test_a_brand_absent_from_the_positions_is_named_with_zero_in_the_alliance_s_order() -> None:
    positions = {"shop.example": 450, "air.example": -450}
    every = complete_positions(positions, ["air.example", "cafe.example", "shop.example"])
    assert list(every.items()) == [("air.example", -450), ("cafe.example", 0), ("shop.example", 450)]


def test_a_position_of_a_brand_the_alliance_does_not_list_is_refused() -> None:
    with pytest.raises(ValueError, match=r"bank\.example"):
        complete_positions({"air.example": -1, "bank.example": 1}, ["air.example", "shop.example"])


def test_a_window_in_which_one_brand_made_no_exchange_closes_with_it_at_zero() -> None:
    chain = Chain.embedded()
    owner, *accounts = chain.accounts[:4]
    alliance = Alliance.deploy(chain, owner)
    ids = ["air.example", "shop.example", "cafe.example"]
    side = {}
    for node_id, account in zip(ids, accounts, strict=True):
        alliance.add_brand(account, node_id, owner)
        side[node_id] = ChainSettlement(chain, alliance.settlement, alliance.registry, account)
    exchanges = {("air.example", "shop.example"): [x(1, "air.example", "shop.example", "450")]}
    for a, b in (("air.example", "shop.example"), ("air.example", "cafe.example"), ("shop.example", "cafe.example")):
        both = exchanges.get((a, b), [])  # the cafe made no exchange: its statements are empty, and agree
        side[a].post(pair(a, b, both, both))
        assert side[b].post(pair(b, a, both, both)) == "confirmed"
    closed = side["air.example"].close(W, {"air.example": -450, "shop.example": 450}, ids)
    assert closed == {"air.example": -450, "shop.example": 450, "cafe.example": 0}
    assert alliance.settlement.functions.closed(window_id(W)).call()
    assert alliance.position(window_id(W), side["cafe.example"].account) == 0
