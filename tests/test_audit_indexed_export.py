"""Filtered audit bundles read through the indexes: the same bundle as a full scan, without the scan."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compliance.audit import Actor, AuditEvent, AuditFilter, AuditTrail
from compliance.audit_bundle import export_bundle, verify_bundle
from compliance.audit_index import AuditIndex
from ledger.storage import Log
from node.runtime import Node

A, B, C = "a" * 32, "b" * 32, "c" * 32
ACTIONS = ["pi.read", "consent.grant", "consent.withdraw", "gate.denied"]
T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def read_through_the_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """These logs are small: without this, any selection is a large share of one and gets scanned."""
    monkeypatch.setattr("compliance.audit_bundle.SCAN_RATIO", 1)


def _events(node: Node, rows: list[tuple[str, str, int]]) -> None:
    """Append one event per (subject, action, hours after T0)."""
    service = Actor(type="service", id="n", role="node")
    trail = AuditTrail(node.store.log("audit"), "n.example")
    trail.record_many(
        AuditEvent(node_id="n.example", actor=service, action=a, subject_pseudo_ids=[s], ts_utc=T0 + timedelta(hours=h))
        for s, a, h in rows
    )


def _bundle(node: Node, flt: AuditFilter, indexed: bool) -> bytes:
    log = node.store.log("audit")
    index = AuditIndex(node.store.engine, log)
    out = io.BytesIO()
    candidates = (lambda size: index.candidates(flt, size)) if indexed else None
    export_bundle(log, node.signer, flt, out, candidates=candidates)
    return out.getvalue()


def _events_of(bundle: bytes) -> list[bytes]:
    return bundle.splitlines()[1:]  # the manifest's attestation differs only by its signature time


FILTERS = [
    AuditFilter(subject=A),
    AuditFilter(subject=B, action="consent."),
    AuditFilter(action="consent.withdraw"),
    AuditFilter(action="consent."),
    AuditFilter(from_ts=T0 + timedelta(hours=5), to_ts=T0 + timedelta(hours=9)),
    AuditFilter(action="gate.denied", from_ts=T0 + timedelta(hours=3)),
]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.tuples(st.sampled_from([A, B, C]), st.sampled_from(ACTIONS), st.integers(0, 12)), min_size=1, max_size=30
    ),
    flt=st.sampled_from(FILTERS),
)
def test_an_indexed_bundle_holds_exactly_the_events_of_a_full_scan(
    make_node: object, rows: list[tuple[str, str, int]], flt: AuditFilter
) -> None:
    node = make_node(f"n{abs(hash((tuple(rows), str(flt)))) % 10**9}.example")  # type: ignore[operator]
    _events(node, rows)
    assert _events_of(_bundle(node, flt, indexed=True)) == _events_of(_bundle(node, flt, indexed=False))


def test_an_indexed_bundle_verifies_offline(node: Node) -> None:
    _events(node, [(A, "pi.read", 1), (B, "consent.grant", 2), (A, "consent.withdraw", 3)])
    report = verify_bundle(io.BytesIO(_bundle(node, AuditFilter(subject=A), indexed=True)), node.signer.verifier())
    assert report.count == 2


def test_a_one_member_bundle_reads_only_that_members_entries(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    _events(node, [(A, "pi.read", 1), (B, "pi.read", 2), (A, "pi.read", 3), (C, "pi.read", 4)])
    AuditIndex(node.store.engine, node.store.log("audit")).catch_up()
    read: list[int] = []
    real_entry = Log.entry

    def counted(self: Log, index: int) -> object:
        read.append(index)
        return real_entry(self, index)

    def no_scan(self: Log, *args: object) -> object:
        raise AssertionError("the whole log was read")

    monkeypatch.setattr(Log, "entry", counted)
    monkeypatch.setattr(Log, "entries", no_scan)
    _bundle(node, AuditFilter(subject=A), indexed=True)
    assert read == [0, 2]


def test_an_entry_that_does_not_prove_into_the_checkpoint_is_refused(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    _events(node, [(A, "pi.read", 1), (B, "pi.read", 2), (A, "pi.read", 3)])
    monkeypatch.setattr(Log, "inclusion_proof", lambda self, index, size: [b"\x00" * 32])
    with pytest.raises(ValueError, match="does not prove into the signed checkpoint"):
        _bundle(node, AuditFilter(subject=A), indexed=True)


def test_a_selection_of_a_large_share_of_the_log_is_scanned(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("compliance.audit_bundle.SCAN_RATIO", 20)
    _events(node, [(A, "pi.read", 1), (B, "pi.read", 2)])
    read: list[int] = []
    monkeypatch.setattr(Log, "entry", lambda self, index: read.append(index))
    _bundle(node, AuditFilter(subject=A), indexed=True)
    assert read == []  # one of two entries: cheaper to read them all in order


def test_without_an_indexed_criterion_the_whole_log_is_read(node: Node) -> None:
    _events(node, [(A, "pi.read", 1)])
    assert (
        AuditIndex(node.store.engine, node.store.log("audit")).candidates(AuditFilter(purpose="marketing"), 1) is None
    )


def test_the_nodes_export_uses_the_index_for_a_member(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    _events(node, [(A, "pi.read", 1), (B, "pi.read", 2)])

    def no_scan(self: Log, *args: object) -> object:
        raise AssertionError("the whole log was read")

    AuditIndex(node.store.engine, node.store.log("audit")).catch_up()
    monkeypatch.setattr(Log, "entries", no_scan)
    manifest = node.audit.export(AuditFilter(subject=A), io.BytesIO())
    assert manifest.count == 1


def test_select_keeps_the_newest_matches(node: Node) -> None:
    _events(node, [(A, "pi.read", h) for h in range(10)] + [(B, "pi.read", 11)])
    chosen = node.audit.select(AuditFilter(subject=A), keep=3)
    assert [i for i, _ in chosen] == [7, 8, 9]
