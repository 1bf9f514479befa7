"""A whole tree in memory: every perfect subtree hash, so bulk proofs need no database reads.

For exports that prove many entries at once (an audit bundle proves each selected event): the
exporter reads every entry anyway, so hashing the tree once (about one SHA-256 per leaf) is far
cheaper than one indexed query per proof. Memory: about 64 bytes per leaf.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from ledger.compact import NodeId, fold_right, perfect_nodes
from ledger.proof import consistency_ranges, inclusion_ranges, resolve
from ledger.rfc6962 import EMPTY_ROOT, NODE_PREFIX, check_hash


class MemoryTree:
    """The perfect subtrees of a tree built from ``leaf_hashes``: ``levels[l][k]`` is subtree ``(l, k)``."""

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        level = [check_hash(h, "leaf hash") for h in leaf_hashes]
        self.size = len(level)
        self.levels = [level]
        sha256 = hashlib.sha256
        while len(level) > 1:
            pairs = iter(level[: len(level) // 2 * 2])  # a lone last node has no parent yet
            level = [sha256(NODE_PREFIX + left + right).digest() for left, right in zip(pairs, pairs, strict=True)]
            self.levels.append(level)

    def _nodes(self, ids: list[NodeId]) -> dict[NodeId, bytes]:
        return {(lvl, k): self.levels[lvl][k] for lvl, k in ids if lvl < len(self.levels) and k < len(self.levels[lvl])}

    def root(self, size: int | None = None) -> bytes:
        """The root of the first ``size`` leaves (default: all)."""
        size = self.size if size is None else size
        if size == 0:
            return EMPTY_ROOT
        ids = perfect_nodes(0, size)
        nodes = self._nodes(ids)
        return fold_right([nodes[n] for n in ids])

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
        return resolve(inclusion_ranges(index, self.size if size is None else size), self._nodes)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """The consistency proof from ``size1`` to ``size2`` leaves."""
        size2 = self.size if size2 is None else size2
        return [] if size1 == size2 else resolve(consistency_ranges(size1, size2), self._nodes)
