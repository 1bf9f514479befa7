"""Compact ranges: the O(log n) state that lets a log append and compute roots.

A Merkle tree of ``size`` leaves is covered by one perfect subtree per set bit of ``size``
(largest first). Appending a leaf merges equal-sized subtrees from the right, exactly like
binary addition; every merge completes a perfect subtree whose hash the store keeps.
Perfect subtrees are named ``(level, index)``: they cover leaves
``[index * 2**level, (index + 1) * 2**level)``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from ledger.errors import TreeSizeError
from ledger.rfc6962 import EMPTY_ROOT, NODE_PREFIX, check_hash, node_hash

NodeId = tuple[int, int]


def perfect_nodes(begin: int, end: int) -> list[NodeId]:
    """Return the fewest perfect subtrees covering leaves ``[begin, end)``, left to right."""
    if begin < 0 or end < begin:
        raise TreeSizeError(f"bad leaf range [{begin}, {end})")
    nodes: list[NodeId] = []
    while begin < end:
        level = (begin & -begin).bit_length() - 1 if begin else (end - begin).bit_length()
        while (1 << level) > end - begin:
            level -= 1
        nodes.append((level, begin >> level))
        begin += 1 << level
    return nodes


def fold_right(hashes: list[bytes]) -> bytes:
    """Hash perfect subtrees (left to right) into the root of the range they cover.

    This is the RFC 6962 root when the range starts on a boundary of its own size's power
    of two, which holds for whole trees and for every subtree an RFC 6962 proof names.
    """
    if not hashes:
        return EMPTY_ROOT
    root = hashes[-1]
    for left in reversed(hashes[:-1]):
        root = node_hash(left, root)
    return root


class CompactRange:
    """The perfect-subtree hashes covering leaves ``[0, size)``; appends in O(log n)."""

    __slots__ = ("hashes", "size")

    def __init__(self, size: int = 0, hashes: Iterable[bytes] = ()) -> None:
        hashes = [check_hash(h, "compact range hash") for h in hashes]
        if size < 0 or len(hashes) != size.bit_count():
            raise TreeSizeError(f"a compact range of size {size} has {size.bit_count()} hashes, got {len(hashes)}")
        self.size = size
        self.hashes = hashes

    def append(self, leaf: bytes) -> list[bytes]:
        """Add one leaf hash; return the hashes of the subtrees it completes (level 1 upward)."""
        completed: list[bytes] = []
        h = leaf
        level = 0
        while (self.size >> level) & 1:
            h = node_hash(self.hashes.pop(), h)
            completed.append(h)
            level += 1
        self.hashes.append(h)
        self.size += 1
        return completed

    def extend(self, leaves: Iterable[bytes]) -> list[bytes]:
        """Append many leaf hashes; for each, return the concatenated hashes of the subtrees it completes.

        The same as calling :meth:`append` for each leaf, without the per-call overhead that
        would otherwise cost as much as the hashing on the append path.
        """
        sha256, prefix, hashes, size = hashlib.sha256, NODE_PREFIX, self.hashes, self.size
        out = []
        for h in leaves:
            completed = b""
            carry = size
            while carry & 1:
                h = sha256(prefix + hashes.pop() + h).digest()
                completed += h
                carry >>= 1
            hashes.append(h)
            size += 1
            out.append(completed)
        self.size = size
        return out

    def append_subtree(self, level: int, subtree_root: bytes) -> None:
        """Add a whole perfect subtree of ``2**level`` leaves; ``size`` must be a multiple of it."""
        if level < 0 or self.size % (1 << level):
            raise TreeSizeError(f"a subtree of level {level} cannot start at leaf {self.size}")
        h, merge_level = subtree_root, level
        while (self.size >> merge_level) & 1:
            h = node_hash(self.hashes.pop(), h)
            merge_level += 1
        self.hashes.append(h)
        self.size += 1 << level

    def root(self) -> bytes:
        """Return the RFC 6962 root hash of the tree ``[0, size)``."""
        return fold_right(self.hashes)

    def copy(self) -> CompactRange:
        """Return an independent copy (appends to it do not change this one)."""
        return CompactRange(self.size, list(self.hashes))


def perfect_root(leaf_hashes: list[bytes]) -> bytes:
    """Root of a perfect subtree given its ``2**k`` leaf hashes, hashed level by level."""
    if not leaf_hashes or len(leaf_hashes) & (len(leaf_hashes) - 1):
        raise TreeSizeError(f"a perfect subtree has a power-of-two number of leaves, not {len(leaf_hashes)}")
    sha256 = hashlib.sha256
    level = leaf_hashes
    while len(level) > 1:
        pairs = iter(level)
        level = [sha256(NODE_PREFIX + left + right).digest() for left, right in zip(pairs, pairs, strict=True)]
    return level[0]


def root_of(leaf_hashes: Iterable[bytes]) -> bytes:
    """Return the RFC 6962 root of a tree built from ``leaf_hashes`` in order."""
    cr = CompactRange()
    for leaf in leaf_hashes:
        cr.append(leaf)
    return cr.root()
