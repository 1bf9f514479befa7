"""`chain verify`'s core: a local log checked against anchored roots; any rewrite before an anchor is caught."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.verify import Anchor, check_log
from ledger.rfc6962 import leaf_hash
from ledger.tree import MemoryTree


def tree_of(entries: list[bytes]) -> MemoryTree:
    return MemoryTree([leaf_hash(e) for e in entries])


def check(local: list[bytes], anchors: list[Anchor], rehashed=None):  # type: ignore[no-untyped-def]
    t = tree_of(local)
    if rehashed is None:  # the stored tree alone, as before the data were rehashed too
        return check_log("a.example/audit", len(local), t.root, t.consistency_proof, anchors)
    return check_log("a.example/audit", len(local), t.root, t.consistency_proof, anchors, rehashed)


@dataclass(frozen=True)
class Rehashed:
    """What the caller's rehash of the entries' data found (``ledger.storage.Rehash`` in a node)."""

    roots: dict[int, bytes]
    rewritten: range | None = None
    problem: str = ""


def rehash_of(data: list[bytes], stored: list[bytes], sizes: list[int]) -> Rehashed:
    """The data rehashed against a stored tree built from ``stored``: roots at ``sizes``, the first difference."""
    roots = {s: tree_of(data).root(s) for s in sizes}
    first = next((i for i, (d, s) in enumerate(zip(data, stored, strict=True)) if d != s), None)
    if first is None:
        return Rehashed(roots)
    return Rehashed(roots, range(first, first + 1), f"entry {first} differs from the stored tree")


def anchors_of(entries: list[bytes], sizes: list[int]) -> list[Anchor]:
    t = tree_of(entries)
    return [Anchor(s, t.root(s)) for s in sizes]


logs = st.lists(st.binary(min_size=1, max_size=8), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(logs, st.data())
def test_an_untouched_log_that_grew_is_consistent_with_every_anchor(entries, data) -> None:  # type: ignore[no-untyped-def]
    sizes = data.draw(st.lists(st.integers(1, len(entries)), min_size=1, max_size=4, unique=True))
    more = data.draw(st.lists(st.binary(min_size=1, max_size=8), max_size=10))
    findings = check(entries + more, anchors_of(entries, sizes))
    assert [f.kind for f in findings] == ["consistent"] * len(sizes)


@settings(max_examples=60, deadline=None)
@given(logs, st.data())
def test_a_rewritten_entry_before_an_anchored_size_is_reported_as_divergence(entries, data) -> None:  # type: ignore[no-untyped-def]
    size = data.draw(st.integers(1, len(entries)))
    index = data.draw(st.integers(0, size - 1))
    forged = list(entries)
    forged[index] = entries[index] + b"\x00"  # any change to the entry's bytes
    findings = check(forged, anchors_of(entries, [size]))
    assert [f.kind for f in findings] == ["diverged"]
    assert f"size {size}" in findings[0].detail


@settings(max_examples=40, deadline=None)
@given(logs, st.data())
def test_a_change_after_the_anchored_size_is_not_divergence(entries, data) -> None:  # type: ignore[no-untyped-def]
    if len(entries) < 2:
        return
    size = data.draw(st.integers(1, len(entries) - 1))
    changed = entries[:size] + [e + b"!" for e in entries[size:]]
    assert check(changed, anchors_of(entries, [size]))[0].ok


def test_an_anchor_beyond_the_local_log_is_a_gap() -> None:
    entries = [bytes([i]) for i in range(10)]
    findings = check(entries[:6], anchors_of(entries, [4, 8]))
    assert [(f.size, f.kind) for f in findings] == [(4, "consistent"), (8, "gap")]
    assert "the local log has 6" in findings[1].detail


@settings(max_examples=60, deadline=None)
@given(logs, st.data())
def test_data_rewritten_under_an_untouched_stored_tree_diverge_from_the_anchor(entries, data) -> None:  # type: ignore[no-untyped-def]
    # the stored tree (what proofs come from) is the original; only the entries' data were changed
    size = data.draw(st.integers(1, len(entries)))
    index = data.draw(st.integers(0, size - 1))
    forged = list(entries)
    forged[index] = entries[index] + b"\x00"
    findings = check(entries, anchors_of(entries, [size]), rehash_of(forged, entries, [size]))
    assert [f.kind for f in findings] == ["diverged"]
    assert f"entry {index} differs" in findings[0].detail


def test_an_anchor_the_data_still_hash_to_before_a_later_rewrite_is_consistent() -> None:
    entries = [bytes([i]) for i in range(10)]
    forged = [*entries[:7], b"forged", *entries[8:]]
    findings = check(entries, anchors_of(entries, [4, 10]), rehash_of(forged, entries, [4, 10]))
    assert [(f.size, f.kind) for f in findings] == [(4, "consistent"), (10, "diverged")]


def test_a_rewrite_after_every_anchored_size_is_a_divergence_of_the_local_log() -> None:
    entries = [bytes([i]) for i in range(10)]
    forged = [*entries[:7], b"forged", *entries[8:]]
    findings = check(entries, anchors_of(entries, [4]), rehash_of(forged, entries, [4]))
    assert [(f.size, f.kind, f.anchored) for f in findings] == [(4, "consistent", True), (10, "diverged", False)]
    assert "entry 7 differs" in findings[1].detail


def test_data_that_cannot_be_read_up_to_an_anchored_size_diverge() -> None:
    entries = [bytes([i]) for i in range(10)]
    missing = Rehashed({4: tree_of(entries).root(4)}, range(6, 7), "entry 6 is missing")
    findings = check(entries, anchors_of(entries, [4, 8]), missing)
    assert [f.kind for f in findings] == ["consistent", "diverged"]
    assert "cannot be read" in findings[1].detail
