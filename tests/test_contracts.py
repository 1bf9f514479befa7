"""The alliance contracts on the embedded chain (py-evm): who may do what, and what reverts."""

from __future__ import annotations

import pytest
from web3 import Web3

from contracts.build import BUILD as BUILD_DIR
from contracts.build import NAMES, artefact_text, compile_one
from contracts.client import Alliance, Chain, ChainRefused
from contracts.devchain import INSTALL_HINT, anvil

ROOT_A, ROOT_B = b"\x0a" * 32, b"\x0b" * 32
WINDOW = Web3.keccak(text="2026-11-01T00:00:00Z/2026-11-02T00:00:00Z")


@pytest.fixture(scope="module", params=["py-evm", "anvil"])
def chain(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """Every test runs on the embedded chain and, where anvil is installed, on a real node."""
    if request.param == "py-evm":
        yield Chain.embedded()
        return
    with anvil() as node:
        if node is None:
            pytest.skip(f"{INSTALL_HINT}: the anvil run of the contract tests is skipped")
        yield node


@pytest.fixture
def alliance(chain: Chain) -> tuple[Alliance, list[str]]:
    owner, air, shop, cafe, stranger = chain.accounts[:5]
    deployed = Alliance.deploy(chain, owner)
    for brand, node_id in ((air, "airline.example"), (shop, "shop.example"), (cafe, "cafe.example")):
        deployed.add_brand(brand, node_id, owner)
    return deployed, [owner, air, shop, cafe, stranger]


@pytest.mark.parametrize("name", NAMES)
def test_the_committed_artefacts_are_what_the_sources_compile_to(name: str) -> None:
    assert (BUILD_DIR / f"{name}.json").read_text(encoding="utf-8") == artefact_text(compile_one(name))


# --- registry -------------------------------------------------------------------------------------


def test_only_the_owner_adds_brands(alliance) -> None:  # type: ignore[no-untyped-def]
    deployed, (owner, air, _, _, stranger) = alliance
    with pytest.raises(ChainRefused, match="only the owner"):
        deployed.add_brand(stranger, "evil.example", air)
    with pytest.raises(ChainRefused, match="node id already taken"):
        deployed.add_brand(stranger, "airline.example", owner)
    assert deployed.registry.functions.brand_count().call() == 3


def test_a_removed_brand_can_no_longer_anchor(alliance) -> None:  # type: ignore[no-untyped-def]
    deployed, (owner, air, _, _, _) = alliance
    with pytest.raises(ChainRefused, match="only the owner"):
        deployed.remove_brand(air, air)
    deployed.remove_brand(air, owner)
    with pytest.raises(ChainRefused, match="unregistered caller"):
        deployed.post_anchor("airline.example/audit", 1, ROOT_A, air)


# --- anchoring ------------------------------------------------------------------------------------


def test_a_brand_anchors_its_own_logs_and_every_anchor_is_an_event(alliance) -> None:  # type: ignore[no-untyped-def]
    deployed, (_, air, _, _, _) = alliance
    deployed.post_anchor("airline.example/audit", 10, ROOT_A, air)
    deployed.post_anchor("airline.example/audit", 12, ROOT_B, air)
    assert deployed.anchored("airline.example/audit") == (12, ROOT_B)
    assert [(a.size, a.root) for a in deployed.anchors("airline.example/audit")] == [(10, ROOT_A), (12, ROOT_B)]
    assert all(a.brand == air for a in deployed.anchors("airline.example/audit"))


def test_an_unregistered_caller_cannot_anchor(alliance) -> None:  # type: ignore[no-untyped-def]
    deployed, (_, _, _, _, stranger) = alliance
    with pytest.raises(ChainRefused, match="unregistered caller"):
        deployed.post_anchor("airline.example/audit", 1, ROOT_A, stranger)


@pytest.mark.parametrize(
    "origin",
    ["shop.example/audit", "airline.example", "airline.example/", "airline.examplex/audit", "xairline.example/a"],
)
def test_a_brand_cannot_anchor_another_origin(alliance, origin: str) -> None:  # type: ignore[no-untyped-def]
    deployed, (_, air, _, _, _) = alliance
    with pytest.raises(ChainRefused, match="not your origin"):
        deployed.post_anchor(origin, 1, ROOT_A, air)


@pytest.mark.parametrize("size", [10, 9, 0])
def test_an_anchored_size_never_shrinks_or_repeats(alliance, size: int) -> None:  # type: ignore[no-untyped-def]
    deployed, (_, air, _, _, _) = alliance
    deployed.post_anchor("airline.example/audit", 10, ROOT_A, air)
    with pytest.raises(ChainRefused, match="sizes only grow"):
        deployed.post_anchor("airline.example/audit", size, ROOT_B, air)
    assert deployed.anchored("airline.example/audit") == (10, ROOT_A)


# --- settlement -----------------------------------------------------------------------------------


def test_matching_statements_confirm_a_pair(alliance) -> None:  # type: ignore[no-untyped-def]
    deployed, (_, air, shop, _, _) = alliance
    deployed.post_statement(WINDOW, shop, b"\x01" * 32, air)
    assert deployed.pair_status(WINDOW, air, shop) == "one_side"
    deployed.post_statement(WINDOW, air, b"\x01" * 32, shop)
    assert deployed.pair_status(WINDOW, shop, air) == "confirmed"


def test_different_statements_open_a_dispute_that_blocks_closing(alliance) -> None:  # type: ignore[no-untyped-def]
    deployed, (_, air, shop, _, _) = alliance
    deployed.post_statement(WINDOW, shop, b"\x01" * 32, air)
    deployed.post_statement(WINDOW, air, b"\x02" * 32, shop)
    assert deployed.pair_status(WINDOW, air, shop) == "disputed"
    with pytest.raises(ChainRefused, match="open dispute"):
        deployed.close_window(WINDOW, [(air, 5), (shop, -5)], air)


def test_a_side_cannot_confirm_twice(alliance) -> None:  # type: ignore[no-untyped-def]
    deployed, (_, air, shop, _, _) = alliance
    deployed.post_statement(WINDOW, shop, b"\x01" * 32, air)
    deployed.post_statement(WINDOW, air, b"\x01" * 32, shop)
    with pytest.raises(ChainRefused, match="already posted"):
        deployed.post_statement(WINDOW, shop, b"\x01" * 32, air)


def test_only_brands_post_statements_about_brands(alliance) -> None:  # type: ignore[no-untyped-def]
    deployed, (_, air, _, _, stranger) = alliance
    with pytest.raises(ChainRefused, match="unregistered caller"):
        deployed.post_statement(WINDOW, air, b"\x01" * 32, stranger)
    with pytest.raises(ChainRefused, match="counterparty is not a brand"):
        deployed.post_statement(WINDOW, stranger, b"\x01" * 32, air)
    with pytest.raises(ChainRefused, match="a pair is two brands"):
        deployed.post_statement(WINDOW, air, b"\x01" * 32, air)


def confirm_all(deployed: Alliance, brands: list[str]) -> None:
    for i, a in enumerate(brands):
        for b in brands[i + 1 :]:
            deployed.post_statement(WINDOW, b, Web3.keccak(text=f"{a}{b}"), a)
            deployed.post_statement(WINDOW, a, Web3.keccak(text=f"{a}{b}"), b)


def test_a_window_closes_with_positions_that_sum_to_zero(alliance) -> None:  # type: ignore[no-untyped-def]
    deployed, (_, air, shop, cafe, _) = alliance
    confirm_all(deployed, [air, shop, cafe])
    with pytest.raises(ChainRefused, match="positions do not sum to zero"):
        deployed.close_window(WINDOW, [(air, 7), (shop, -3), (cafe, -3)], shop)
    deployed.close_window(WINDOW, [(air, 7), (shop, -3), (cafe, -4)], shop)
    assert [deployed.position(WINDOW, b) for b in (air, shop, cafe)] == [7, -3, -4]
    with pytest.raises(ChainRefused, match="window closed"):
        deployed.close_window(WINDOW, [(air, 7), (shop, -7)], air)
    with pytest.raises(ChainRefused, match="window closed"):
        deployed.post_statement(WINDOW, shop, b"\x09" * 32, cafe)


def test_a_window_does_not_close_while_a_pair_is_unconfirmed(alliance) -> None:  # type: ignore[no-untyped-def]
    deployed, (_, air, shop, cafe, _) = alliance
    confirm_all(deployed, [air, shop])
    deployed.post_statement(WINDOW, cafe, b"\x01" * 32, air)  # cafe has not answered
    with pytest.raises(ChainRefused, match="pair not confirmed"):
        deployed.close_window(WINDOW, [(air, 1), (shop, 0), (cafe, -1)], air)
    with pytest.raises(ChainRefused, match="a brand named twice"):
        deployed.close_window(WINDOW, [(air, 1), (air, 0), (shop, -1)], air)
    with pytest.raises(ChainRefused, match="every brand must be named"):
        deployed.close_window(WINDOW, [(air, 1), (shop, -1)], air)


def test_a_ledger_log_checks_against_its_anchors_and_a_rewritten_copy_does_not(alliance, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from contracts.verify import check_against_chain
    from ledger.storage import LedgerStore, create_engine

    deployed, (_, air, _, _, _) = alliance

    def new_log(db: str):  # type: ignore[no-untyped-def]
        store = LedgerStore(create_engine(f"sqlite:///{tmp_path}/{db}"))
        store.create_schema()
        return store.create_log("audit", "airline.example/audit")

    log = new_log("a.db")
    log.append([f"event {i}".encode() for i in range(20)])
    deployed.post_anchor(log.origin, 12, log.root_at(12), air)
    deployed.post_anchor(log.origin, 20, log.root_at(20), air)
    log.append([b"later"])
    assert all(f.ok for f in check_against_chain(log, deployed.anchors(log.origin)))
    rewritten = new_log("b.db")
    rewritten.append([f"event {i}".encode() if i != 5 else b"forged" for i in range(21)])
    assert [f.kind for f in check_against_chain(rewritten, deployed.anchors(log.origin))] == ["diverged", "diverged"]
