"""Inclusion and consistency proofs (RFC 9162 sections 2.1.3 and 2.1.4) as pure functions.

Generation is split in two: :func:`inclusion_ranges` / :func:`consistency_ranges` say which
subtrees a proof consists of (pure arithmetic), and :func:`resolve` turns them into hashes
with whatever node source the caller has (a database, a dict), so a store needs only the
O(log n) node reads the proof names. Verification never trusts a length or size it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ledger.compact import NodeId, fold_right, perfect_nodes
from ledger.errors import ProofError, RootMismatchError, TreeSizeError
from ledger.rfc6962 import check_hash, node_hash

LeafRange = tuple[int, int]
NodeSource = Callable[[list[NodeId]], dict[NodeId, bytes]]


def _largest_power_of_two_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_ranges(index: int, size: int) -> list[LeafRange]:
    """Return the leaf ranges whose roots form the inclusion proof of ``index`` in ``size``."""
    if size <= 0 or not 0 <= index < size:
        raise TreeSizeError(f"leaf index {index} is not in a tree of size {size}")
    ranges: list[LeafRange] = []
    begin, end = 0, size
    while end - begin > 1:
        k = _largest_power_of_two_below(end - begin)
        if index < begin + k:
            ranges.append((begin + k, end))
            end = begin + k
        else:
            ranges.append((begin, begin + k))
            begin += k
    ranges.reverse()
    return ranges


def consistency_ranges(size1: int, size2: int) -> list[LeafRange]:
    """Return the leaf ranges whose roots form the consistency proof from ``size1`` to ``size2``."""
    if size1 <= 0:
        raise TreeSizeError(f"a consistency proof needs a first size >= 1, got {size1}")
    if size1 > size2:
        raise TreeSizeError(f"first size {size1} is larger than second size {size2}")
    ranges: list[LeafRange] = []
    begin, end, m, whole = 0, size2, size1, True
    while m != end - begin:
        k = _largest_power_of_two_below(end - begin)
        if m <= k:
            ranges.append((begin + k, end))
            end = begin + k
        else:
            ranges.append((begin, begin + k))
            m -= k
            begin += k
            whole = False
    if not whole:
        ranges.append((begin, end))
    ranges.reverse()
    return ranges


def resolve(ranges: Sequence[LeafRange], nodes: NodeSource) -> list[bytes]:
    """Turn leaf ranges into their root hashes, fetching every perfect subtree in one call."""
    plans = [perfect_nodes(b, e) for b, e in ranges]
    wanted = sorted({n for plan in plans for n in plan})
    found = nodes(wanted)
    missing = [n for n in wanted if n not in found]
    if missing:
        raise ProofError(f"node source lacks subtrees {missing[:3]}")
    return [fold_right([found[n] for n in plan]) for plan in plans]


def _check_proof(proof: Sequence[bytes] | None, expected: int, what: str) -> list[bytes]:
    proof = list(proof or [])
    if len(proof) != expected:
        raise ProofError(f"{what} proof has {len(proof)} hashes, expected {expected}")
    return [check_hash(p, f"{what} proof hash {i}") for i, p in enumerate(proof)]


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes] | None) -> bytes:
    """Return the root implied by ``leaf`` at ``index`` with ``proof`` in a tree of ``size``."""
    leaf = check_hash(leaf, "leaf hash")
    expected = len(inclusion_ranges(index, size))
    proof = _check_proof(proof, expected, "inclusion")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:  # unreachable when the length check holds; kept as the RFC's own guard
        raise ProofError("inclusion proof is too short")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes] | None, root: bytes) -> None:
    """Raise unless ``proof`` shows that ``leaf`` is at ``index`` in the tree ``(size, root)``."""
    root = check_hash(root, "root")
    got = root_from_inclusion_proof(index, size, leaf, proof)
    if got != root:
        raise RootMismatchError(f"inclusion proof gives root {got.hex()}, expected {root.hex()}")


def verify_consistency(size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes] | None) -> None:
    """Raise unless ``proof`` shows the tree ``(size2, root2)`` extends ``(size1, root1)``."""
    root1 = check_hash(root1, "first root")
    root2 = check_hash(root2, "second root")
    if size1 <= 0:
        raise TreeSizeError(f"a consistency proof needs a first size >= 1, got {size1}")
    if size1 > size2:
        raise TreeSizeError(f"first size {size1} is larger than second size {size2}")
    if size1 == size2:
        _check_proof(proof, 0, "consistency")
        if root1 != root2:
            raise RootMismatchError(f"equal sizes {size1} but roots differ")
        return
    proof = _check_proof(proof, len(consistency_ranges(size1, size2)), "consistency")
    if size1 & (size1 - 1) == 0:
        proof = [root1, *proof]
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != root1:
        raise RootMismatchError(f"consistency proof gives first root {fr.hex()}, expected {root1.hex()}")
    if sr != root2:
        raise RootMismatchError(f"consistency proof gives second root {sr.hex()}, expected {root2.hex()}")
