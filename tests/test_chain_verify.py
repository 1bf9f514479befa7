"""`chain verify`'s core: a local log checked against anchored roots; any rewrite before an anchor is caught."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.verify import Anchor, check_log
from ledger.rfc6962 import leaf_hash
from ledger.tree import MemoryTree


def tree_of(entries: list[bytes]) -> MemoryTree:
    return MemoryTree([leaf_hash(e) for e in entries])


def check(local: list[bytes], anchors: list[Anchor]):  # type: ignore[no-untyped-def]
    t = tree_of(local)
    return check_log("a.example/audit", len(local), t.root, t.consistency_proof, anchors)


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
