"""The node's chain from its settings: the connection and the account it acts from (or None: off)."""

from __future__ import annotations

from web3 import Web3

from contracts.client import Chain, ChainRefused
from node.core.settings import NodeSettings


def node_chain(settings: NodeSettings) -> tuple[Chain, str] | None:
    """Connect to ``chain_rpc_url``; act from the key in ``chain_key_file`` (signed locally) or else
    from ``chain_account`` (unlocked on that node). None when no chain is configured."""
    s = settings
    if not s.chain_rpc_url:
        return None
    chain = Chain.connect(s.chain_rpc_url)
    if s.chain_key_file:
        path = s.data_dir / s.chain_key_file
        try:
            key = path.read_text(encoding="ascii").strip()
        except OSError as exc:
            raise ChainRefused(f"cannot read the chain key {path}: {exc.strerror or exc}") from exc
        return chain, chain.use_key(key)
    if not s.chain_account:
        raise ChainRefused("chain_rpc_url is set but neither chain_key_file nor chain_account is")
    return chain, Web3.to_checksum_address(s.chain_account)
