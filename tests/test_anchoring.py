"""A node anchors its logs' checkpoints when they are due, and what it anchored verifies."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts.anchoring import AnchorPolicy
from contracts.client import Alliance, Chain
from contracts.verify import check_against_chain
from node.chain.anchoring import Anchorer
from node.core.datadir import init_node
from node.runtime import Node


@pytest.mark.parametrize(
    ("local", "anchored", "since", "due"),
    [
        (10, 10, None, False),  # nothing new
        (11, 10, None, True),  # new entries, never anchored by this process
        (11, 10, 5.0, False),  # a few new entries, anchored recently
        (11, 10, 700.0, True),  # a few new entries, long ago
        (1010, 10, 5.0, True),  # enough new entries
    ],
)
def test_a_log_is_due_after_enough_entries_or_enough_time(
    local: int, anchored: int, since: float | None, due: bool
) -> None:
    assert AnchorPolicy(every_entries=1000, every_seconds=600).due(local, anchored, since) is due


def test_a_policy_needs_positive_limits() -> None:
    with pytest.raises(ValueError, match="positive"):
        AnchorPolicy(every_entries=0)


@pytest.fixture
def setup(tmp_path: Path):  # type: ignore[no-untyped-def]
    init_node(tmp_path / "n", "n.example")
    node = Node.open(tmp_path / "n")
    chain = Chain.embedded()
    owner, account, stranger = chain.accounts[:3]
    alliance = Alliance.deploy(chain, owner)
    alliance.add_brand(account, "n.example", owner)
    node.store.log("audit").append([f"event {i}".encode() for i in range(5)])
    yield node, chain, alliance, account, stranger
    node.dispose()


def test_a_node_anchors_each_log_once_until_it_is_due_again(setup) -> None:  # type: ignore[no-untyped-def]
    node, chain, alliance, account, _ = setup
    anchorer = Anchorer(node.store, chain, alliance.anchor, account, AnchorPolicy(every_entries=10, every_seconds=3600))
    first = dict(anchorer.tick())
    assert first["n.example/audit"] == node.store.log("audit").size
    assert anchorer.tick() == []  # nothing new
    node.store.log("audit").append([f"more {i}".encode() for i in range(3)])
    assert anchorer.tick() == []  # 3 new entries, anchored a moment ago
    node.store.log("audit").append([f"more {i}".encode() for i in range(10)])
    assert [o for o, _ in anchorer.tick()] == ["n.example/audit"]
    log = node.store.log("audit")
    assert alliance.anchored(log.origin) == (log.size, log.root_at(log.size))
    assert all(f.ok for f in check_against_chain(log, alliance.anchors(log.origin)))


def test_an_unregistered_account_anchors_nothing_and_does_not_crash(setup) -> None:  # type: ignore[no-untyped-def]
    node, chain, alliance, _, stranger = setup
    assert Anchorer(node.store, chain, alliance.anchor, stranger).tick() == []
    assert alliance.anchors("n.example/audit") == []


def test_anchoring_is_off_unless_the_settings_name_a_chain(setup) -> None:  # type: ignore[no-untyped-def]
    from node.chain.anchoring import from_settings

    node, *_ = setup
    assert from_settings(node.settings, node.store) is None


def test_a_node_can_sign_locally_with_its_own_key_instead_of_an_unlocked_account(setup) -> None:  # type: ignore[no-untyped-def]
    from eth_account import Account

    node, chain, alliance, _, _ = setup
    key = Account.create()
    funder = chain.accounts[0]
    chain.w3.eth.send_transaction({"from": funder, "to": key.address, "value": 10**18})
    address = chain.use_key(key.key.hex())
    assert address == key.address
    alliance.remove_brand(chain.accounts[1], funder)
    alliance.add_brand(address, "n.example", funder)
    assert dict(Anchorer(node.store, chain, alliance.anchor, address).tick())["n.example/audit"] == 5


def test_a_key_that_is_not_one_is_refused(setup) -> None:  # type: ignore[no-untyped-def]
    from contracts.client import ChainRefused

    _, chain, *_ = setup
    with pytest.raises(ChainRefused, match="not a private key"):
        chain.use_key("0x1234")


def test_a_serving_node_configured_with_a_chain_anchors_in_the_background(tmp_path: Path) -> None:
    import time

    from contracts.devchain import INSTALL_HINT, anvil
    from node.api.app import _anchor_loop
    from node.core.settings import load_settings, write_config

    with anvil() as chain:
        if chain is None:
            pytest.skip(f"{INSTALL_HINT}: the background loop is tested on anvil only")
        owner, account = chain.accounts[:2]
        alliance = Alliance.deploy(chain, owner)
        alliance.add_brand(account, "n.example", owner)
        init_node(tmp_path / "n", "n.example")
        settings = load_settings(tmp_path / "n").model_copy(
            update={
                "chain_rpc_url": chain.w3.provider.endpoint_uri,
                "chain_anchor_address": alliance.anchor.address,
                "chain_account": account,
                "anchor_every_entries": 1,
            }
        )
        write_config(settings)  # what an operator writes into node.toml
        node = Node.open(tmp_path / "n")
        try:
            node.store.log("audit").append([b"a", b"b"])
            loop = _anchor_loop(node)
            assert loop is not None
            loop.start()
            deadline = time.monotonic() + 20
            while alliance.anchored("n.example/audit")[0] < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            loop.stop()
            assert alliance.anchored("n.example/audit") == (2, node.store.log("audit").root_at(2))
        finally:
            node.dispose()
