"""A node's settlement on chain: its statement hash per pair, and closing a window with the positions.

Off unless the node's settings name a chain (``chain_rpc_url``, ``chain_settlement_address``,
``chain_account``). Brands are found by node id in the registry contract the settlement contract
names, so the node needs no address book of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from web3 import Web3

from contracts.client import Chain
from node.chain.config import node_chain
from node.core.settings import NodeSettings
from node.settlement.service import PairStatements
from node.settlement.statements import Window, bilateral_digest


def window_id(window: Window) -> bytes:
    """The window's id on chain: keccak256 of ``<start ISO>/<end ISO>``."""
    return bytes(Web3.keccak(text=f"{window.start.isoformat()}/{window.end.isoformat()}"))


@dataclass
class ChainSettlement:
    """The settlement contract as one node uses it."""

    chain: Chain
    settlement: Any
    registry: Any
    account: str

    @classmethod
    def from_settings(cls, settings: NodeSettings) -> ChainSettlement | None:
        """The node's handle when its settings name a chain and a settlement contract, else None."""
        s = settings
        connected = node_chain(s) if s.chain_settlement_address else None
        if connected is None:
            return None
        chain, account = connected
        settlement = chain.contract("Settlement", Web3.to_checksum_address(s.chain_settlement_address))
        registry = chain.contract("Registry", settlement.functions.registry().call())
        return cls(chain, settlement, registry, account)

    def address_of(self, node_id: str) -> str:
        """The chain account the registry holds for ``node_id`` (LookupError if none)."""
        address = self.registry.functions.brand_of(Web3.keccak(text=node_id)).call()
        if int(address, 16) == 0:
            raise LookupError(f"{node_id} is not registered on chain")
        return str(address)

    def post(self, pair: PairStatements) -> str:
        """Post this node's statement hash for ``pair``; the pair's status after it."""
        counterpart = self.address_of(pair.mine.counterpart)
        wid = window_id(pair.window)
        self.chain.send(
            self.settlement.functions.post_statement(wid, counterpart, bilateral_digest(pair.mine)), self.account
        )
        key = self.settlement.functions.pair_key(self.account, counterpart).call()
        return ("unposted", "one_side", "confirmed", "disputed")[self.settlement.functions.pair_status(wid, key).call()]

    def close(self, window: Window, positions: Mapping[str, int], brands: Iterable[str]) -> dict[str, int]:
        """Close ``window`` with the net positions by node id; return the positions as closed.

        ``brands`` are the node ids of every brand of the alliance (the registry file's): the contract
        wants each registered brand named, so a brand without an exchange in the window closes at 0.
        The contract checks the brand count, every pair and the sum (:class:`ChainRefused` otherwise).
        """
        every = complete_positions(positions, brands)
        accounts = [self.address_of(n) for n in every]
        self.chain.send(
            self.settlement.functions.close_window(window_id(window), accounts, list(every.values())), self.account
        )
        return every


def complete_positions(positions: Mapping[str, int], brands: Iterable[str]) -> dict[str, int]:
    """Every brand's net position, in ``brands``' order: a brand with no exchange in the window (absent from
    the netting's positions) has 0. ``ValueError`` if a position names a brand ``brands`` does not list."""
    every = dict.fromkeys(brands, 0)
    unknown = sorted(set(positions) - set(every))
    if unknown:
        raise ValueError(f"positions name brands the alliance does not list: {', '.join(unknown)}")
    every.update(positions)
    return every
