"""Property tests of proof generation, verification and compact ranges over trees of up to 300 leaves."""

from __future__ import annotations

import functools
import hashlib
import itertools

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ledger.compact import CompactRange, perfect_nodes, root_of
from ledger.errors import HashLengthError, LedgerError, TreeSizeError
from ledger.proof import consistency_ranges, inclusion_ranges, resolve, verify_consistency, verify_inclusion
from ledger.rfc6962 import EMPTY_ROOT, leaf_hash, node_hash

MAX_SIZE = 300
PROPERTY = settings(max_examples=200, deadline=None)


def mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1 Merkle Tree Hash of a list of leaf *inputs*, by its recursive definition."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


LEAVES = [b"leaf %d" % i for i in range(MAX_SIZE)]
LEAF_HASHES = [leaf_hash(x) for x in LEAVES]


def _all_perfect_subtrees() -> dict[tuple[int, int], bytes]:
    nodes: dict[tuple[int, int], bytes] = {}
    level, hashes = 0, LEAF_HASHES
    while hashes:
        nodes.update(((level, i), h) for i, h in enumerate(hashes))
        hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes) - 1, 2)]
        level += 1
    return nodes


NODES = _all_perfect_subtrees()


def source(ids):
    return {n: NODES[n] for n in ids if n in NODES}


@functools.cache
def root(size: int) -> bytes:
    return mth(LEAVES[:size])


def inclusion_proof(index: int, size: int) -> list[bytes]:
    return resolve(inclusion_ranges(index, size), source)


def consistency_proof(size1: int, size2: int) -> list[bytes]:
    return resolve(consistency_ranges(size1, size2), source)


def flip(value: bytes, bit: int) -> bytes:
    bit %= len(value) * 8
    out = bytearray(value)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


sizes = st.integers(min_value=1, max_value=MAX_SIZE)


@st.composite
def index_and_size(draw):
    size = draw(sizes)
    return draw(st.integers(min_value=0, max_value=size - 1)), size


@st.composite
def size_pair(draw, strict: bool = False):
    size2 = draw(st.integers(min_value=2 if strict else 1, max_value=MAX_SIZE))
    size1 = draw(st.integers(min_value=1, max_value=size2 - 1 if strict else size2))
    return size1, size2


bits = st.integers(min_value=0, max_value=255)
bad_lengths = st.integers(min_value=0, max_value=64).filter(lambda n: n != 32)


# --- the reference tree ---------------------------------------------------------------------


def test_reference_mth_matches_the_known_root_of_the_empty_tree():
    assert mth([]) == EMPTY_ROOT


@PROPERTY
@given(sizes)
def test_resolved_whole_range_is_the_reference_root(size):
    assert resolve([(0, size)], source) == [root(size)]


# --- inclusion ------------------------------------------------------------------------------


@PROPERTY
@given(index_and_size())
def test_generated_inclusion_proof_verifies(case):
    index, size = case
    verify_inclusion(index, size, LEAF_HASHES[index], inclusion_proof(index, size), root(size))


@PROPERTY
@given(index_and_size(), st.data())
def test_inclusion_fails_when_any_bit_of_any_proof_hash_flips(case, data):
    index, size = case
    proof = inclusion_proof(index, size)
    assume(proof)
    i = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
    proof[i] = flip(proof[i], data.draw(bits))
    with pytest.raises(LedgerError):
        verify_inclusion(index, size, LEAF_HASHES[index], proof, root(size))


@PROPERTY
@given(index_and_size(), bits)
def test_inclusion_fails_when_any_bit_of_the_leaf_flips(case, bit):
    index, size = case
    with pytest.raises(LedgerError):
        verify_inclusion(index, size, flip(LEAF_HASHES[index], bit), inclusion_proof(index, size), root(size))


@PROPERTY
@given(index_and_size(), bits)
def test_inclusion_fails_when_any_bit_of_the_root_flips(case, bit):
    index, size = case
    with pytest.raises(LedgerError):
        verify_inclusion(index, size, LEAF_HASHES[index], inclusion_proof(index, size), flip(root(size), bit))


@PROPERTY
@given(index_and_size(), st.data())
def test_inclusion_fails_when_a_proof_element_is_inserted(case, data):
    index, size = case
    proof = inclusion_proof(index, size)
    extra = data.draw(st.sampled_from([*proof, LEAF_HASHES[index], root(size), bytes(32)]))
    proof.insert(data.draw(st.integers(min_value=0, max_value=len(proof))), extra)
    with pytest.raises(LedgerError):
        verify_inclusion(index, size, LEAF_HASHES[index], proof, root(size))


@PROPERTY
@given(index_and_size(), st.data())
def test_inclusion_fails_when_a_proof_element_is_removed(case, data):
    index, size = case
    proof = inclusion_proof(index, size)
    assume(proof)
    del proof[data.draw(st.integers(min_value=0, max_value=len(proof) - 1))]
    with pytest.raises(LedgerError):
        verify_inclusion(index, size, LEAF_HASHES[index], proof, root(size))


@PROPERTY
@given(index_and_size(), st.integers(min_value=0, max_value=2 * MAX_SIZE))
def test_inclusion_of_an_index_at_or_beyond_the_size_is_a_tree_size_error(case, excess):
    _, size = case
    with pytest.raises(TreeSizeError):
        verify_inclusion(size + excess, size, LEAF_HASHES[0], [], root(size))


@pytest.mark.parametrize(("index", "size"), [(0, 0), (-1, 5), (0, -1)])
def test_inclusion_in_an_empty_or_negative_tree_or_at_a_negative_index_is_a_tree_size_error(index, size):
    with pytest.raises(TreeSizeError):
        verify_inclusion(index, size, LEAF_HASHES[0], [], EMPTY_ROOT)


@PROPERTY
@given(index_and_size(), bad_lengths, st.sampled_from(["leaf", "root", "proof"]), st.data())
def test_inclusion_with_a_hash_of_the_wrong_length_is_a_hash_length_error(case, length, which, data):
    index, size = case
    leaf, proof, r = LEAF_HASHES[index], inclusion_proof(index, size), root(size)
    bad = bytes(range(length))
    if which == "leaf":
        leaf = bad
    elif which == "root":
        r = bad
    else:
        assume(proof)
        proof[data.draw(st.integers(min_value=0, max_value=len(proof) - 1))] = bad
    with pytest.raises(HashLengthError):
        verify_inclusion(index, size, leaf, proof, r)


# --- consistency ----------------------------------------------------------------------------


@PROPERTY
@given(size_pair())
def test_generated_consistency_proof_verifies(pair):
    size1, size2 = pair
    verify_consistency(size1, size2, root(size1), root(size2), consistency_proof(size1, size2))


@PROPERTY
@given(size_pair(strict=True), st.data())
def test_consistency_fails_when_any_bit_of_any_proof_hash_flips(pair, data):
    size1, size2 = pair
    proof = consistency_proof(size1, size2)
    i = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
    proof[i] = flip(proof[i], data.draw(bits))
    with pytest.raises(LedgerError):
        verify_consistency(size1, size2, root(size1), root(size2), proof)


@PROPERTY
@given(size_pair(), bits, st.booleans())
def test_consistency_fails_when_any_bit_of_either_root_flips(pair, bit, first):
    size1, size2 = pair
    root1, root2 = root(size1), root(size2)
    if first:
        root1 = flip(root1, bit)
    else:
        root2 = flip(root2, bit)
    with pytest.raises(LedgerError):
        verify_consistency(size1, size2, root1, root2, consistency_proof(size1, size2))


@PROPERTY
@given(size_pair(), st.data())
def test_consistency_fails_when_a_proof_element_is_inserted(pair, data):
    size1, size2 = pair
    proof = consistency_proof(size1, size2)
    extra = data.draw(st.sampled_from([*proof, root(size1), root(size2), bytes(32)]))
    proof.insert(data.draw(st.integers(min_value=0, max_value=len(proof))), extra)
    with pytest.raises(LedgerError):
        verify_consistency(size1, size2, root(size1), root(size2), proof)


@PROPERTY
@given(size_pair(strict=True), st.data())
def test_consistency_fails_when_a_proof_element_is_removed(pair, data):
    size1, size2 = pair
    proof = consistency_proof(size1, size2)
    del proof[data.draw(st.integers(min_value=0, max_value=len(proof) - 1))]
    with pytest.raises(LedgerError):
        verify_consistency(size1, size2, root(size1), root(size2), proof)


@PROPERTY
@given(size_pair(strict=True))
def test_consistency_proof_between_different_sizes_is_never_empty(pair):
    size1, size2 = pair
    assert consistency_proof(size1, size2)
    with pytest.raises(LedgerError):
        verify_consistency(size1, size2, root(size1), root(size2), [])


@PROPERTY
@given(size_pair(strict=True))
def test_consistency_with_the_sizes_swapped_is_a_tree_size_error(pair):
    size1, size2 = pair
    with pytest.raises(TreeSizeError):
        verify_consistency(size2, size1, root(size2), root(size1), consistency_proof(size1, size2))


@PROPERTY
@given(st.integers(min_value=0, max_value=MAX_SIZE))
def test_consistency_from_size_zero_is_a_tree_size_error(size2):
    with pytest.raises(TreeSizeError):
        verify_consistency(0, size2, EMPTY_ROOT, root(size2), [])
    with pytest.raises(TreeSizeError):
        consistency_ranges(0, size2)


@PROPERTY
@given(size_pair(strict=True), bad_lengths, st.sampled_from(["root1", "root2", "proof"]), st.data())
def test_consistency_with_a_hash_of_the_wrong_length_is_a_hash_length_error(pair, length, which, data):
    size1, size2 = pair
    root1, root2, proof = root(size1), root(size2), consistency_proof(size1, size2)
    bad = bytes(range(length))
    if which == "root1":
        root1 = bad
    elif which == "root2":
        root2 = bad
    else:
        proof[data.draw(st.integers(min_value=0, max_value=len(proof) - 1))] = bad
    with pytest.raises(HashLengthError):
        verify_consistency(size1, size2, root1, root2, proof)


@PROPERTY
@given(sizes, st.integers(min_value=1, max_value=MAX_SIZE - 1))
def test_consistency_fails_between_trees_with_different_histories(size1, extra):
    # a tree of the same size whose leaves differ from ours must not be shown consistent with it
    size2 = min(MAX_SIZE, size1 + extra)
    other_root1 = mth([b"other " + x for x in LEAVES[:size1]])
    with pytest.raises(LedgerError):
        verify_consistency(size1, size2, other_root1, root(size2), consistency_proof(size1, size2))


# --- compact ranges -------------------------------------------------------------------------


def test_appending_leaves_one_by_one_tracks_the_reference_root_at_every_size():
    cr = CompactRange()
    assert cr.root() == mth([])
    for size, h in enumerate(LEAF_HASHES, start=1):
        cr.append(h)
        assert cr.size == size
        assert cr.root() == root(size)


@PROPERTY
@given(sizes)
def test_root_of_leaf_hashes_is_the_reference_root(size):
    assert root_of(LEAF_HASHES[:size]) == root(size)


def test_append_returns_the_perfect_subtrees_the_leaf_completes():
    cr = CompactRange()
    for i, h in enumerate(LEAF_HASHES):
        completed = cr.append(h)
        # leaf i completes the subtree (level, k) for every level with (i + 1) divisible by 2**level
        expected_levels = [lvl for lvl in range(1, 10) if (i + 1) % (1 << lvl) == 0]
        assert len(completed) == len(expected_levels)
        for lvl, got in zip(expected_levels, completed, strict=True):
            begin = i + 1 - (1 << lvl)
            assert got == mth(LEAVES[begin : i + 1])


@PROPERTY
@given(sizes, sizes)
def test_a_copied_compact_range_is_independent(size, more):
    cr = CompactRange()
    for h in LEAF_HASHES[:size]:
        cr.append(h)
    snapshot = cr.copy()
    for i in range(more):
        cr.append(leaf_hash(b"more %d" % i))
    assert snapshot.size == size
    assert snapshot.root() == root(size)


@PROPERTY
@given(sizes)
def test_compact_range_can_be_rebuilt_from_its_size_and_hashes(size):
    cr = CompactRange()
    for h in LEAF_HASHES[:size]:
        cr.append(h)
    rebuilt = CompactRange(cr.size, cr.hashes)
    assert rebuilt.root() == root(size)
    assert rebuilt.hashes == [NODES[n] for n in perfect_nodes(0, size)]


@pytest.mark.parametrize(("size", "count"), [(1, 0), (1, 2), (3, 1), (-1, 0), (4, 2)])
def test_compact_range_with_a_hash_count_not_matching_its_size_is_refused(size, count):
    with pytest.raises(TreeSizeError):
        CompactRange(size, [bytes(32)] * count)


def test_compact_range_with_a_short_hash_is_refused():
    with pytest.raises(HashLengthError):
        CompactRange(1, [bytes(31)])


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=5000), st.integers(min_value=0, max_value=5000))
def test_perfect_nodes_cover_exactly_the_range_with_aligned_power_of_two_subtrees(a, b):
    begin, end = min(a, b), max(a, b)
    nodes = perfect_nodes(begin, end)
    cursor = begin
    for level, k in nodes:
        assert level >= 0
        assert k >= 0
        start = k << level  # aligned: starts on a multiple of its own size 2**level
        assert start == cursor
        cursor = start + (1 << level)
    assert cursor == end
    # fewest nodes: no two neighbours are siblings that one parent could replace
    for (lvl1, k1), (lvl2, k2) in itertools.pairwise(nodes):
        assert not (lvl1 == lvl2 and k1 % 2 == 0 and k2 == k1 + 1)


@PROPERTY
@given(st.integers(min_value=0, max_value=10**6))
def test_perfect_nodes_of_a_whole_tree_are_one_per_set_bit_largest_first(size):
    nodes = perfect_nodes(0, size)
    assert len(nodes) == size.bit_count()
    levels = [lvl for lvl, _ in nodes]
    assert levels == sorted(levels, reverse=True)
    assert sum(1 << lvl for lvl in levels) == size


@pytest.mark.parametrize(("begin", "end"), [(-1, 3), (5, 4), (1, 0)])
def test_perfect_nodes_of_a_bad_range_is_a_tree_size_error(begin, end):
    with pytest.raises(TreeSizeError):
        perfect_nodes(begin, end)
