"""web3.py client of the alliance contracts: deploy, register brands, anchor, settle, read events.

The chain is chosen by RPC URL (``Chain.connect``); the embedded default (``Chain.embedded``) is
py-evm through web3's ``EthereumTesterProvider``, so nothing external is needed. A revert becomes
:class:`ChainRefused` carrying the contract's reason ("unregistered caller", "sizes only grow", …).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from web3 import Web3
from web3.exceptions import ContractLogicError

from contracts.build import load

#: Receipt polling on a local node: web3's default 0.1 s would dominate an anchor on anvil.
LOCAL_POLL_SECONDS = 0.005


class ChainRefused(Exception):
    """The contract reverted; ``reason`` is its message."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Sent:
    """A mined transaction: its hash, block and gas."""

    tx_hash: str
    block: int
    gas_used: int


@dataclass(frozen=True)
class AnchorRecord:
    """One anchored checkpoint, from the chain's events."""

    origin: str
    size: int
    root: bytes
    brand: str
    block: int


class Chain:
    """A web3 connection with the accounts it can sign for."""

    def __init__(self, w3: Web3) -> None:
        self.w3 = w3

    @classmethod
    def embedded(cls) -> Chain:
        """A fresh in-memory chain (py-evm) with funded test accounts."""
        from web3 import EthereumTesterProvider

        return cls(Web3(EthereumTesterProvider()))

    @classmethod
    def connect(cls, rpc_url: str, timeout: float = 10.0) -> Chain:
        """The chain behind ``rpc_url`` (HTTP); refuses one that does not answer."""
        w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))
        if not w3.is_connected():
            raise ChainRefused(f"no EVM node answers at {rpc_url}")
        return cls(w3)

    def use_key(self, private_key: str) -> str:
        """Sign this node's transactions locally with ``private_key`` (hex); its address.

        For public or consortium chains, where no account is unlocked on the JSON-RPC node: the key
        never leaves this process, only signed transactions do.
        """
        from eth_account import Account
        from web3.middleware import SignAndSendRawMiddlewareBuilder

        try:
            account = Account.from_key(private_key)
        except (ValueError, TypeError) as exc:
            raise ChainRefused(f"not a private key: {type(exc).__name__}") from None
        self.w3.middleware_onion.inject(SignAndSendRawMiddlewareBuilder.build(account), layer=0)
        return str(account.address)

    @property
    def accounts(self) -> list[str]:
        """Accounts the node unlocks for us (test chains)."""
        return list(self.w3.eth.accounts)

    def send(self, call: Any, sender: str) -> Sent:
        """Send a contract call from ``sender`` and wait for it; :class:`ChainRefused` on a revert."""
        try:
            tx = call.transact({"from": sender})
        except _REVERTS as exc:
            raise ChainRefused(_reason(exc)) from exc
        receipt = self.w3.eth.wait_for_transaction_receipt(tx, poll_latency=LOCAL_POLL_SECONDS)
        if receipt["status"] != 1:
            raise ChainRefused("reverted")
        return Sent(receipt["transactionHash"].hex(), receipt["blockNumber"], receipt["gasUsed"])

    def deploy(self, name: str, sender: str, *args: Any) -> tuple[str, Sent]:
        """Deploy the committed artefact ``name``; its address and the deployment."""
        art = load(name)
        factory = self.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
        sent = self.send(factory.constructor(*args), sender)
        receipt = self.w3.eth.get_transaction_receipt(sent.tx_hash)
        return receipt["contractAddress"], sent

    def contract(self, name: str, address: str) -> Any:
        """A handle on the deployed ``name`` at ``address``."""
        return self.w3.eth.contract(address=address, abi=load(name)["abi"])


def read_anchors(anchor: Any, origin: str | None = None, from_block: int = 0) -> list[AnchorRecord]:
    """The ``Anchored`` events of the anchor contract (of ``origin``, if given), oldest first."""
    filters = {"origin_hash": Web3.keccak(text=origin)} if origin else None
    logs = anchor.events.Anchored.get_logs(from_block=from_block, argument_filters=filters)
    return [AnchorRecord(e.args.origin, e.args.size, bytes(e.args.root), e.args.brand, e.blockNumber) for e in logs]


def _reverts() -> tuple[type[Exception], ...]:
    """What a revert raises: a node's JSON-RPC error, or the embedded chain's own exception."""
    kinds: list[type[Exception]] = [ContractLogicError]
    try:
        from eth_tester.exceptions import TransactionFailed

        kinds.append(TransactionFailed)
    except ImportError:  # only the embedded chain needs eth-tester
        pass
    return tuple(kinds)


_REVERTS = _reverts()


def _reason(exc: Exception) -> str:
    text = str(getattr(exc, "message", None) or exc)
    return text.removeprefix("execution reverted: ").strip().strip("'\"") or "reverted"


@dataclass
class Alliance:
    """The three contracts of one alliance on one chain."""

    chain: Chain
    registry: Any
    anchor: Any
    settlement: Any

    @classmethod
    def deploy(cls, chain: Chain, owner: str) -> Alliance:
        """Deploy the registry (owned by ``owner``), the anchor and the settlement contracts."""
        registry, _ = chain.deploy("Registry", owner)
        anchor, _ = chain.deploy("Anchor", owner, registry)
        settlement, _ = chain.deploy("Settlement", owner, registry)
        return cls.at(chain, {"registry": registry, "anchor": anchor, "settlement": settlement})

    @classmethod
    def at(cls, chain: Chain, addresses: dict[str, str]) -> Alliance:
        """Handles on contracts already deployed at ``addresses``."""
        return cls(
            chain,
            chain.contract("Registry", addresses["registry"]),
            chain.contract("Anchor", addresses["anchor"]),
            chain.contract("Settlement", addresses["settlement"]),
        )

    @property
    def addresses(self) -> dict[str, str]:
        """Where the contracts live (what a node's configuration records)."""
        return {"registry": self.registry.address, "anchor": self.anchor.address, "settlement": self.settlement.address}

    # --- registry ---------------------------------------------------------------------------------

    def add_brand(self, brand: str, node_id: str, owner: str) -> Sent:
        """Register ``brand``'s account under its node id (owner only)."""
        return self.chain.send(self.registry.functions.add_brand(brand, node_id), owner)

    def remove_brand(self, brand: str, owner: str) -> Sent:
        """Remove a brand (owner only); it can no longer anchor or settle."""
        return self.chain.send(self.registry.functions.remove_brand(brand), owner)

    # --- anchoring --------------------------------------------------------------------------------

    def post_anchor(self, origin: str, size: int, root: bytes, brand: str) -> Sent:
        """Anchor a checkpoint of the brand's own log ``origin``."""
        return self.chain.send(self.anchor.functions.anchor(origin, size, root), brand)

    def anchored(self, origin: str) -> tuple[int, bytes]:
        """The largest anchored size of ``origin`` and its root ((0, zeros) if none)."""
        key = Web3.keccak(text=origin)
        return self.anchor.functions.size_of(key).call(), bytes(self.anchor.functions.root_of(key).call())

    def anchors(self, origin: str | None = None, from_block: int = 0) -> list[AnchorRecord]:
        """Every anchor (of ``origin``, if given), oldest first, from the chain's events."""
        filters = {"origin_hash": Web3.keccak(text=origin)} if origin else None
        logs = self.anchor.events.Anchored.get_logs(from_block=from_block, argument_filters=filters)
        return [AnchorRecord(e.args.origin, e.args.size, bytes(e.args.root), e.args.brand, e.blockNumber) for e in logs]

    # --- settlement -------------------------------------------------------------------------------

    def post_statement(self, window: bytes, counterparty: str, statement: bytes, brand: str) -> Sent:
        """Post the hash of ``brand``'s signed statement with ``counterparty`` for ``window``."""
        return self.chain.send(self.settlement.functions.post_statement(window, counterparty, statement), brand)

    def pair_status(self, window: bytes, a: str, b: str) -> str:
        """``unposted``, ``one_side``, ``confirmed`` or ``disputed``."""
        key = self.settlement.functions.pair_key(a, b).call()
        code = self.settlement.functions.pair_status(window, key).call()
        return ("unposted", "one_side", "confirmed", "disputed")[code]

    def close_window(self, window: bytes, positions: Sequence[tuple[str, int]], brand: str) -> Sent:
        """Close ``window`` with each brand's net position (they must sum to zero on chain)."""
        brands = [b for b, _ in positions]
        return self.chain.send(self.settlement.functions.close_window(window, brands, [p for _, p in positions]), brand)

    def position(self, window: bytes, brand: str) -> int:
        """``brand``'s recorded net position in a closed window."""
        return int(self.settlement.functions.position_of(window, brand).call())
