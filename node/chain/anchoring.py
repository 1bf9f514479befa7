"""The node's side of anchoring: its logs' checkpoints posted to the alliance's Anchor contract.

Off unless configured (``chain_rpc_url``, ``chain_anchor_address``, ``chain_account``). What was
anchored is read back from the chain on every pass, so nothing is kept locally and a restart just
carries on; the root posted for a size is the log's own root at that size.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from contracts.anchoring import AnchorPolicy
from ledger.storage import LedgerStore
from node.core.periodic import Periodic
from node.core.settings import NodeSettings

if TYPE_CHECKING:  # web3 comes with the [chain] extra: imported only by a node that anchors
    from contracts.client import Chain

log = logging.getLogger("alliance.anchoring")


@dataclass
class Anchorer:
    """Anchors each of the node's logs that :class:`AnchorPolicy` says is due."""

    store: LedgerStore
    chain: Chain
    anchor: Any  # the Anchor contract handle
    account: str
    policy: AnchorPolicy = field(default_factory=AnchorPolicy)
    _last: dict[str, float] = field(default_factory=dict)
    #: each log's size on the chain as last seen by :meth:`tick`, by log name (what /metrics reports)
    seen: dict[str, int] = field(default_factory=dict)

    def anchored(self) -> dict[str, int]:
        """Each log's size as the Anchor contract holds it now (0: never anchored), by log name."""
        return {
            name: int(self.anchor.functions.size_of(self.chain.w3.keccak(text=self.store.log(name).origin)).call())
            for name in self.store.log_names()
        }

    def tick(self) -> list[tuple[str, int]]:
        """One pass over the logs; the (origin, size) pairs anchored."""
        from contracts.client import ChainRefused

        done = []
        for name in self.store.log_names():
            lg = self.store.log(name)
            size = lg.size
            key = self.chain.w3.keccak(text=lg.origin)
            anchored = int(self.anchor.functions.size_of(key).call())
            self.seen[name] = anchored
            since = time.monotonic() - self._last[lg.origin] if lg.origin in self._last else None
            if not self.policy.due(size, anchored, since):
                continue
            try:
                self.chain.send(self.anchor.functions.anchor(lg.origin, size, lg.root_at(size)), self.account)
            except ChainRefused as exc:
                log.warning("anchoring %s at %d refused: %s", lg.origin, size, exc.reason)
                continue
            self._last[lg.origin] = time.monotonic()
            self.seen[name] = size
            done.append((lg.origin, size))
        return done


class AnchorLoop(Periodic):
    """Runs :meth:`Anchorer.tick` every ``interval`` seconds in a thread (what ``serve`` starts)."""

    def __init__(self, anchorer: Anchorer, interval: float) -> None:
        self.anchorer = anchorer
        super().__init__("anchoring", interval, self._pass, log)

    def _pass(self) -> None:
        for origin, size in self.anchorer.tick():
            log.info("anchored %s at size %d", origin, size)


def from_settings(settings: NodeSettings, store: LedgerStore) -> Anchorer | None:
    """The node's anchorer when its settings name a chain and the Anchor contract, else None (off)."""
    s = settings
    if not (s.chain_rpc_url and s.chain_anchor_address):
        return None
    from node.chain.config import node_chain  # the [chain] extra: only for a node that anchors

    connected = node_chain(s)
    if connected is None:
        return None
    chain, account = connected
    anchor = chain.contract("Anchor", chain.w3.to_checksum_address(s.chain_anchor_address))
    return Anchorer(store, chain, anchor, account, AnchorPolicy(s.anchor_every_entries, s.anchor_every_seconds))
