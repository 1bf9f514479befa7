# pragma version 0.4.3
"""
@title Checkpoint anchor
@notice A registered brand posts (origin, tree size, root) of its own Merkle logs: the origin must
        be its node id followed by "/" (e.g. "airline.example/audit"), and a log's size only grows.
        Every anchor is an event, so the chain keeps the whole history for `chain verify`.
"""

interface Registry:
    def node_id_of(who: address) -> String[100]: view

event Anchored:
    origin_hash: indexed(bytes32)
    brand: indexed(address)
    origin: String[200]
    size: uint256
    root: bytes32

registry: public(Registry)
size_of: public(HashMap[bytes32, uint256])  # keccak256(origin) -> largest anchored size
root_of: public(HashMap[bytes32, bytes32])  # keccak256(origin) -> root at that size
anchors: public(uint256)


@deploy
def __init__(registry: address):
    self.registry = Registry(registry)


@external
def anchor(origin: String[200], size: uint256, root: bytes32):
    node_id: String[100] = staticcall self.registry.node_id_of(msg.sender)
    n: uint256 = len(node_id)
    assert n > 0, "unregistered caller"
    assert len(origin) > n + 1, "not your origin"
    assert keccak256(slice(origin, 0, n + 1)) == keccak256(concat(node_id, "/")), "not your origin"
    key: bytes32 = keccak256(origin)
    assert size > self.size_of[key], "sizes only grow"
    self.size_of[key] = size
    self.root_of[key] = root
    self.anchors += 1
    log Anchored(origin_hash=key, brand=msg.sender, origin=origin, size=size, root=root)
