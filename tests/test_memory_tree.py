"""The in-memory tree gives the same roots and proofs as the stored log."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.compact import root_of
from ledger.proof import verify_consistency, verify_inclusion
from ledger.rfc6962 import leaf_hash
from ledger.tree import MemoryTree

LEAVES = [leaf_hash(str(i).encode()) for i in range(300)]
TREE = MemoryTree(LEAVES)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1), st.integers(1, n))))
def test_memory_tree_proofs_verify_at_every_size(args: tuple[int, int, int]) -> None:
    size, index, older = args
    root = TREE.root(size)
    assert root == root_of(LEAVES[:size])
    verify_inclusion(index, size, LEAVES[index], TREE.inclusion_proof(index, size), root)
    verify_consistency(older, size, TREE.root(older), root, TREE.consistency_proof(older, size))


def test_an_empty_tree_has_the_empty_root() -> None:
    assert MemoryTree([]).root() == root_of([])
