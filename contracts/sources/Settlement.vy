# pragma version 0.4.3
"""
@title Settlement windows
@notice For a window, each side of a brand pair posts the hash of its signed bilateral statement.
        Equal hashes confirm the pair; different hashes open a dispute. A window closes when every
        registered brand is named, every pair of them is confirmed and no dispute is open, recording
        each brand's net position; the positions must sum to zero.
"""

interface Registry:
    def is_brand(who: address) -> bool: view
    def brand_count() -> uint256: view

event StatementPosted:
    window: indexed(bytes32)
    brand: indexed(address)
    counterparty: indexed(address)
    statement: bytes32

event PairConfirmed:
    window: indexed(bytes32)
    pair: indexed(bytes32)
    statement: bytes32

event DisputeOpened:
    window: indexed(bytes32)
    pair: indexed(bytes32)

event WindowClosed:
    window: indexed(bytes32)
    brands: DynArray[address, MAX_BRANDS]
    positions: DynArray[int256, MAX_BRANDS]

MAX_BRANDS: constant(uint256) = 16
UNPOSTED: constant(uint8) = 0  # no side has posted
ONE_SIDE: constant(uint8) = 1
CONFIRMED: constant(uint8) = 2
DISPUTED: constant(uint8) = 3

registry: public(Registry)
statement_of: public(HashMap[bytes32, HashMap[address, HashMap[address, bytes32]]])  # window, poster, counterparty
pair_status: public(HashMap[bytes32, HashMap[bytes32, uint8]])  # window, pair key
open_disputes: public(HashMap[bytes32, uint256])
closed: public(HashMap[bytes32, bool])
position_of: public(HashMap[bytes32, HashMap[address, int256]])


@deploy
def __init__(registry: address):
    self.registry = Registry(registry)


@pure
@internal
def _pair(a: address, b: address) -> bytes32:
    if convert(a, uint256) < convert(b, uint256):
        return keccak256(concat(convert(a, bytes20), convert(b, bytes20)))
    return keccak256(concat(convert(b, bytes20), convert(a, bytes20)))


@pure
@external
def pair_key(a: address, b: address) -> bytes32:
    return self._pair(a, b)


@external
def post_statement(window: bytes32, counterparty: address, statement: bytes32):
    assert staticcall self.registry.is_brand(msg.sender), "unregistered caller"
    assert staticcall self.registry.is_brand(counterparty), "counterparty is not a brand"
    assert counterparty != msg.sender, "a pair is two brands"
    assert statement != empty(bytes32), "no statement"
    assert not self.closed[window], "window closed"
    assert self.statement_of[window][msg.sender][counterparty] == empty(bytes32), "already posted"
    self.statement_of[window][msg.sender][counterparty] = statement
    log StatementPosted(window=window, brand=msg.sender, counterparty=counterparty, statement=statement)
    pair: bytes32 = self._pair(msg.sender, counterparty)
    other: bytes32 = self.statement_of[window][counterparty][msg.sender]
    if other == empty(bytes32):
        self.pair_status[window][pair] = ONE_SIDE
    elif other == statement:
        self.pair_status[window][pair] = CONFIRMED
        log PairConfirmed(window=window, pair=pair, statement=statement)
    else:
        self.pair_status[window][pair] = DISPUTED
        self.open_disputes[window] += 1
        log DisputeOpened(window=window, pair=pair)


@external
def close_window(window: bytes32, brands: DynArray[address, MAX_BRANDS], positions: DynArray[int256, MAX_BRANDS]):
    assert staticcall self.registry.is_brand(msg.sender), "unregistered caller"
    assert not self.closed[window], "window closed"
    assert self.open_disputes[window] == 0, "open dispute"
    n: uint256 = len(brands)
    assert n >= 2, "a window settles two brands or more"
    assert len(positions) == n, "one position per brand"
    assert n == staticcall self.registry.brand_count(), "every brand must be named"
    total: int256 = 0
    for i: uint256 in range(MAX_BRANDS):
        if i >= n:
            break
        total += positions[i]
        for j: uint256 in range(MAX_BRANDS):
            if j >= n:
                break
            if j > i:
                assert brands[i] != brands[j], "a brand named twice"
                assert self.pair_status[window][self._pair(brands[i], brands[j])] == CONFIRMED, "pair not confirmed"
    assert total == 0, "positions do not sum to zero"
    for i: uint256 in range(MAX_BRANDS):
        if i >= n:
            break
        self.position_of[window][brands[i]] = positions[i]
    self.closed[window] = True
    log WindowClosed(window=window, brands=brands, positions=positions)
