"""Reconciling two exchange logs through one signed Merkle digest of the pair's exchanges."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import note
from ledger.rfc6962 import leaf_hash
from node.demo.alliance import BrandSpec, create_alliance
from node.exchange.quotes import make_quote
from node.exchange.records import CommittedExchange
from node.peers.registry import Brand
from node.runtime import Node
from node.settlement.reconcile import PairDigest, pair_digest
from node.settlement.statements import SettlementError

T0 = datetime(2026, 11, 1, tzinfo=UTC)
AIR, SHOP, CAFE = "airline.alliance.example", "supermarket.alliance.example", "coffee.alliance.example"


def _brand(node_id: str, value: str) -> Brand:
    vkey = note.Signer.generate(node_id).verifier().to_vkey()
    return Brand(
        node_id=node_id,
        name=node_id,
        vkey=vkey,
        url="http://127.0.0.1:9",
        point_value_fen=Decimal(value),
        exchange_fee=Decimal(0),
    )


BRANDS = {AIR: _brand(AIR, "4.5"), SHOP: _brand(SHOP, "1"), CAFE: _brand(CAFE, "0.8")}


def _entry(i: int, src: str, dst: str, points: int = 100) -> bytes:
    quote = make_quote(points, BRANDS[src], BRANDS[dst], T0 + timedelta(minutes=i))
    return CommittedExchange(quote, f"link-{i}", "c2ln", "cmVj").entry()


def _leaves(entries: list[bytes]) -> Iterator[tuple[bytes, bytes]]:
    return ((e, leaf_hash(e)) for e in entries)


PAIR_ENTRIES = [_entry(i, *((AIR, SHOP) if i % 2 else (SHOP, AIR))) for i in range(12)]
OTHER_ENTRIES = [_entry(100 + i, AIR, CAFE) for i in range(5)]


@settings(max_examples=30, deadline=None)
@given(st.randoms(use_true_random=False))
def test_the_digest_does_not_depend_on_the_order_each_node_logged_in(rng: random.Random) -> None:
    shuffled = PAIR_ENTRIES + OTHER_ENTRIES
    rng.shuffle(shuffled)
    mine = pair_digest(_leaves(PAIR_ENTRIES + OTHER_ENTRIES), AIR, SHOP, 17)
    theirs = pair_digest(_leaves(shuffled), SHOP, AIR, 17)
    assert mine.same_entries(theirs)
    assert mine.count == 12


def test_only_the_pairs_exchanges_count_in_its_digest() -> None:
    with_others = pair_digest(_leaves(PAIR_ENTRIES + OTHER_ENTRIES), AIR, SHOP, 17)
    alone = pair_digest(_leaves(PAIR_ENTRIES), AIR, SHOP, 12)
    assert with_others.same_entries(alone)


@given(st.integers(0, len(PAIR_ENTRIES) - 1))
def test_a_missing_exchange_changes_the_digest(missing: int) -> None:
    full = pair_digest(_leaves(PAIR_ENTRIES), AIR, SHOP, 12)
    short = pair_digest(_leaves(PAIR_ENTRIES[:missing] + PAIR_ENTRIES[missing + 1 :]), SHOP, AIR, 11)
    assert not full.same_entries(short)


@given(st.integers(0, len(PAIR_ENTRIES) - 1), st.integers(100, 5000))
def test_an_exchange_logged_with_other_amounts_changes_the_digest(which: int, points: int) -> None:
    altered = list(PAIR_ENTRIES)
    altered[which] = _entry(which, *((AIR, SHOP) if which % 2 else (SHOP, AIR)), points=points)
    if points == 100:
        altered[which] = PAIR_ENTRIES[which][:-1] + b" "  # same amounts: a byte changed instead
    assert not pair_digest(_leaves(PAIR_ENTRIES), AIR, SHOP, 12).same_entries(
        pair_digest(_leaves(altered), SHOP, AIR, 12)
    )


def test_a_signed_digest_reads_back_only_under_its_authors_key() -> None:
    signer, other = note.Signer.generate(SHOP), note.Signer.generate(SHOP)
    digest = pair_digest(_leaves(PAIR_ENTRIES), SHOP, AIR, 12)
    assert PairDigest.from_json(digest.to_json(signer), signer.verifier()) == digest
    with pytest.raises(ValueError, match="not signed"):
        PairDigest.from_json(digest.to_json(signer), other.verifier())


def test_a_digest_with_a_changed_count_no_longer_verifies() -> None:
    signer = note.Signer.generate(SHOP)
    data = pair_digest(_leaves(PAIR_ENTRIES), SHOP, AIR, 12).to_json(signer)
    with pytest.raises(ValueError, match="not signed"):
        PairDigest.from_json({**data, "count": 11}, signer.verifier())


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Node]]:
    base: Path = tmp_path_factory.mktemp("digest")
    specs = [
        BrandSpec("airline", "Air", Decimal("4.5"), Decimal(0), 9),
        BrandSpec("supermarket", "Shop", Decimal(1), Decimal(0), 9),
    ]
    create_alliance(base, specs)
    opened = {s.key: Node.open(base / s.key) for s in specs}
    opened["airline"].store.log("exchange").append(PAIR_ENTRIES[:6])
    opened["supermarket"].store.log("exchange").append(list(reversed(PAIR_ENTRIES[:6])))
    yield opened
    for n in opened.values():
        n.dispose()


def test_two_nodes_with_the_same_exchanges_agree_on_their_digests(nodes: dict[str, Node]) -> None:
    answer = nodes["supermarket"].settlement.digest_for(AIR)
    agreed = nodes["airline"].settlement.compare_digest(SHOP, answer)
    assert agreed is not None
    assert (agreed.agreed, agreed.common) == (True, 6)


def test_a_node_missing_an_exchange_sees_the_digests_differ(nodes: dict[str, Node]) -> None:
    answer = nodes["airline"].settlement.digest_for(SHOP)
    nodes["airline"].store.log("exchange").append([PAIR_ENTRIES[6]])
    try:
        assert nodes["supermarket"].settlement.compare_digest(AIR, nodes["airline"].settlement.digest_for(SHOP)) is None
    finally:
        nodes["supermarket"].store.log("exchange").append([PAIR_ENTRIES[6]])
    assert nodes["supermarket"].settlement.compare_digest(AIR, nodes["airline"].settlement.digest_for(SHOP)) is not None
    assert answer["digest"]["count"] == 6


def test_a_digest_the_peer_did_not_sign_is_refused(nodes: dict[str, Node]) -> None:
    answer = nodes["supermarket"].settlement.digest_for(AIR)
    forged = {**answer, "digest": {**answer["digest"], "root": note.b64encode(bytes(32))}}
    with pytest.raises(SettlementError, match="does not verify"):
        nodes["airline"].settlement.compare_digest(SHOP, forged)


def test_a_digest_about_another_brand_is_refused(nodes: dict[str, Node]) -> None:
    answer = nodes["supermarket"].settlement.digest_for(CAFE)
    with pytest.raises(SettlementError, match="not of its exchanges with"):
        nodes["airline"].settlement.compare_digest(SHOP, answer)
