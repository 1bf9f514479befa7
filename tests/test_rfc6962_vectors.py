"""The RFC 6962 / RFC 9162 test vectors of transparency-dev/merkle (see tests/data/rfc6962/NOTICE.md)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from ledger.compact import perfect_nodes, root_of
from ledger.errors import HashLengthError, LedgerError
from ledger.proof import consistency_ranges, inclusion_ranges, resolve, verify_consistency, verify_inclusion
from ledger.rfc6962 import EMPTY_ROOT, leaf_hash, node_hash

DATA = Path(__file__).parent / "data" / "rfc6962"
INCLUSION_FILES = sorted((DATA / "inclusion").rglob("*.json"))
CONSISTENCY_FILES = sorted((DATA / "consistency").rglob("*.json"))
ROOTS = json.loads((DATA / "roots.json").read_text())
LEAVES = [bytes.fromhex(x) for x in ROOTS["leaf_inputs"]]
ROOT_BY_SIZE = {int(size): bytes.fromhex(root) for size, root in ROOTS["roots"].items()}

# The vectors' "don't care" roots are 12 bytes ("don't care 2"); our verifier checks every
# hash is 32 bytes before anything else (as the vectors' README asks), so this case, valid
# upstream, must fail here with HashLengthError. See the companion test below.
STRICTER_THAN_UPSTREAM = {"consistency/additional/sizes-are-equal-one-and-proof-is-empty.json": HashLengthError}


def _rel(path: Path) -> str:
    return path.relative_to(DATA).as_posix()


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _b64(value: str) -> bytes:
    return base64.b64decode(value)


def _proof(value: list[str] | None) -> list[bytes] | None:
    return None if value is None else [_b64(p) for p in value]


def _call_inclusion(case: dict) -> None:
    verify_inclusion(
        case["leafIdx"], case["treeSize"], _b64(case["leafHash"]), _proof(case["proof"]), _b64(case["root"])
    )


def _call_consistency(case: dict) -> None:
    verify_consistency(case["size1"], case["size2"], _b64(case["root1"]), _b64(case["root2"]), _proof(case["proof"]))


def test_there_are_196_vector_files():
    assert len(INCLUSION_FILES) + len(CONSISTENCY_FILES) == 196


def test_the_stricter_override_names_an_existing_vector_that_upstream_accepts():
    for rel in STRICTER_THAN_UPSTREAM:
        case = _load(DATA / rel)
        assert case["wantErr"] is False
        assert len(_b64(case["root1"])) != 32


@pytest.mark.parametrize("path", INCLUSION_FILES, ids=_rel)
def test_inclusion_vector_fails_exactly_when_upstream_says_so(path):
    case = _load(path)
    if case["wantErr"]:
        with pytest.raises(LedgerError):
            _call_inclusion(case)
    else:
        _call_inclusion(case)


@pytest.mark.parametrize("path", CONSISTENCY_FILES, ids=_rel)
def test_consistency_vector_fails_exactly_when_upstream_says_so(path):
    case = _load(path)
    override = STRICTER_THAN_UPSTREAM.get(_rel(path))
    if override is not None:
        with pytest.raises(override):
            _call_consistency(case)
    elif case["wantErr"]:
        with pytest.raises(LedgerError):
            _call_consistency(case)
    else:
        _call_consistency(case)


def test_equal_sizes_one_with_equal_real_roots_and_empty_proof_verify():
    root = leaf_hash(LEAVES[0])
    verify_consistency(1, 1, root, root, [])
    verify_consistency(1, 1, root, root, None)


def test_roots_json_has_eight_leaves_and_nine_roots():
    assert len(LEAVES) == 8
    assert sorted(ROOT_BY_SIZE) == list(range(9))
    assert ROOT_BY_SIZE[0] == EMPTY_ROOT


@pytest.mark.parametrize("size", range(9))
def test_root_of_first_leaves_matches_reference_root(size):
    assert root_of([leaf_hash(x) for x in LEAVES[:size]]) == ROOT_BY_SIZE[size]


def _perfect_subtrees(leaves: list[bytes]) -> dict[tuple[int, int], bytes]:
    """Every perfect subtree hash (level, index) of the tree over ``leaves``, built level by level."""
    level_hashes = [leaf_hash(x) for x in leaves]
    nodes: dict[tuple[int, int], bytes] = {}
    level = 0
    while level_hashes:
        for i, h in enumerate(level_hashes):
            nodes[(level, i)] = h
        level_hashes = [node_hash(level_hashes[i], level_hashes[i + 1]) for i in range(0, len(level_hashes) - 1, 2)]
        level += 1
    return nodes


NODES_OF_8 = _perfect_subtrees(LEAVES)


def _dict_source(ids):
    return {n: NODES_OF_8[n] for n in ids if n in NODES_OF_8}


def test_in_memory_node_source_holds_every_perfect_subtree_of_8_leaves():
    assert len(NODES_OF_8) == 8 + 4 + 2 + 1
    assert NODES_OF_8[(3, 0)] == ROOT_BY_SIZE[8]
    for size in range(1, 9):
        assert resolve([(0, size)], _dict_source) == [ROOT_BY_SIZE[size]]
        assert all(n in NODES_OF_8 for n in perfect_nodes(0, size))


HAPPY_INCLUSION = [p for p in INCLUSION_FILES if p.name == "happy-path.json"]
HAPPY_CONSISTENCY = [p for p in CONSISTENCY_FILES if p.name == "happy-path.json"]


def test_happy_path_vectors_cover_trees_of_size_8():
    assert {_load(p)["treeSize"] for p in HAPPY_INCLUSION} >= {8}
    assert {_load(p)["size2"] for p in HAPPY_CONSISTENCY} >= {8}


@pytest.mark.parametrize("path", HAPPY_INCLUSION, ids=_rel)
def test_generated_inclusion_proof_matches_happy_path_vector(path):
    case = _load(path)
    index, size = case["leafIdx"], case["treeSize"]
    # every happy-path vector is over a prefix of the 8 reference leaves
    assert _b64(case["root"]) == ROOT_BY_SIZE[size]
    assert _b64(case["leafHash"]) == leaf_hash(LEAVES[index])
    generated = resolve(inclusion_ranges(index, size), _dict_source)
    assert generated == (_proof(case["proof"]) or [])
    verify_inclusion(index, size, leaf_hash(LEAVES[index]), generated, ROOT_BY_SIZE[size])


@pytest.mark.parametrize("path", HAPPY_CONSISTENCY, ids=_rel)
def test_generated_consistency_proof_matches_happy_path_vector(path):
    case = _load(path)
    size1, size2 = case["size1"], case["size2"]
    assert _b64(case["root1"]) == ROOT_BY_SIZE[size1]
    assert _b64(case["root2"]) == ROOT_BY_SIZE[size2]
    generated = resolve(consistency_ranges(size1, size2), _dict_source)
    assert generated == (_proof(case["proof"]) or [])
    verify_consistency(size1, size2, ROOT_BY_SIZE[size1], ROOT_BY_SIZE[size2], generated)


def test_every_generated_proof_in_the_tree_of_8_verifies():
    for size in range(1, 9):
        for index in range(size):
            proof = resolve(inclusion_ranges(index, size), _dict_source)
            verify_inclusion(index, size, leaf_hash(LEAVES[index]), proof, ROOT_BY_SIZE[size])
        for size1 in range(1, size + 1):
            proof = resolve(consistency_ranges(size1, size), _dict_source)
            verify_consistency(size1, size, ROOT_BY_SIZE[size1], ROOT_BY_SIZE[size], proof)
