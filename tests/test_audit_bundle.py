"""Audit bundles (PIPL-LOG-02): a filtered export that verifies offline with only the node's key,
and fails, naming the first bad event, whatever is changed, dropped, added or reordered."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from compliance.audit import Actor, AuditEvent, AuditEventError, AuditFilter, AuditTrail, Recipient
from compliance.audit_bundle import FORMAT, BundleError, attestation_text, export_bundle, verify_bundle
from ledger import note
from ledger.canonical import canonical_json
from ledger.checkpoint import Checkpoint
from ledger.storage import LedgerStore, Log, create_engine
from node.cli.audit import audit_app
from node.core.datadir import init_node
from node.core.settings import VKEY_FILE
from node.runtime import Node

NODE = "a.example"
A, B, C = "aa" * 16, "bb" * 16, "cc" * 16
T0 = datetime(2026, 11, 1, tzinfo=UTC)
SERVICE = Actor(type="service", id=NODE, role="node")

# (action, subjects, extra fields) for ledger indexes 0..9; the filter action="consent." selects 0, 2, 4, 6, 9.
SCRIPT: list[tuple[str, list[str], dict[str, Any]]] = [
    ("consent.grant", [A], {"purpose_code": "marketing", "legal_basis": "consent", "consent_ids": ["c-1"]}),
    ("pi.read", [B], {}),
    ("consent.withdraw", [A], {"purpose_code": "marketing", "legal_basis": "consent", "consent_ids": ["c-1"]}),
    ("pi.provide", [A], {"purpose_code": "points_exchange:coffee", "recipient": Recipient(id="coffee.example")}),
    ("consent.grant", [B], {"purpose_code": "joint_modeling"}),
    ("audit.export", [], {"record_count": 3}),
    ("consent.renew", [C], {"details": {"notice_version": 2}}),
    ("pi.read", [A], {}),
    ("gate.denied", [B], {"outcome": "denied", "reason_code": "no_consent"}),
    ("consent.grant", [C], {"actor": Actor(type="member", id=C, role="member")}),
]
CONSENT = [0, 2, 4, 6, 9]


def script_events() -> list[AuditEvent]:
    """The script as events, the same on every call (fixed ids and times)."""
    events = []
    for i, (action, subjects, extra) in enumerate(SCRIPT):
        fields = {"actor": SERVICE, **extra}
        when = T0 + timedelta(hours=i)
        events.append(
            AuditEvent(
                event_id=f"{i:032x}", node_id=NODE, action=action, subject_pseudo_ids=subjects, ts_utc=when, **fields
            )
        )
    return events


@dataclass
class Trail:
    log: Log
    signer: note.Signer

    @property
    def verifier(self) -> note.Verifier:
        return note.Verifier.from_vkey(self.signer.verifier().to_vkey())  # only the key text crosses over

    def bundle(self, flt: AuditFilter | None = None) -> bytes:
        out = io.BytesIO()
        export_bundle(self.log, self.signer, flt or AuditFilter(), out)
        return out.getvalue()


def _trail(db: Path) -> tuple[LedgerStore, Trail]:
    store = LedgerStore(create_engine(f"sqlite:///{db}"))
    store.create_schema()
    log = store.create_log("audit", f"{NODE}/audit")
    AuditTrail(log, NODE).record_many(script_events())
    return store, Trail(log, note.Signer.generate(NODE))


@pytest.fixture
def trail(tmp_path: Path) -> Iterator[Trail]:
    store, t = _trail(tmp_path / "node.db")
    yield t
    store.close()


@pytest.fixture(scope="module")
def consent_bundle() -> Iterator[tuple[bytes, Trail]]:
    """One filtered bundle shared by the tests that only tamper with its bytes."""
    with tempfile.TemporaryDirectory() as d:
        store, t = _trail(Path(d) / "node.db")
        yield t.bundle(AuditFilter(action="consent.")), t
        store.close()


def verify(data: bytes, verifier: note.Verifier) -> Any:
    return verify_bundle(io.BytesIO(data), verifier)


def split(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def event_obj(line: bytes) -> dict[str, Any]:
    return json.loads(line)


def line_of(obj: dict[str, Any]) -> bytes:
    return canonical_json(obj) + b"\n"


def reattest(lines: list[bytes], signer: note.Signer, **manifest: Any) -> list[bytes]:
    """What a dishonest exporter holding the node's key could write: a manifest re-signed over these lines."""
    m = {**json.loads(lines[0]), **manifest}
    events = lines[1:]
    m["count"] = len(events)
    cp = Checkpoint.parse_text(note.parse(m["checkpoint"]).text)
    digest = hashlib.sha256(b"".join(events)).hexdigest()
    text = attestation_text(m["origin"], m["tree_size"], cp.root_hash, m["count"], m["filter"], digest)
    m["attestation"] = note.sign(text, signer)
    return [line_of(m), *events]


# --- a good bundle ----------------------------------------------------------------------


def test_a_filtered_bundle_verifies_offline_with_only_the_vkey(trail: Trail) -> None:
    flt = AuditFilter(action="consent.")
    data = trail.bundle(flt)
    v = verify(data, trail.verifier)
    head = trail.log.head()
    assert (v.count, v.tree_size, v.root_hash, v.origin, v.filter) == (5, 10, head.root_hash, f"{NODE}/audit", flt)
    lines = split(data)
    assert json.loads(lines[0])["format"] == FORMAT
    assert [event_obj(line)["index"] for line in lines[1:]] == CONSENT
    script = script_events()
    assert [AuditEvent.model_validate(event_obj(line)["event"]) for line in lines[1:]] == [script[i] for i in CONSENT]


@pytest.mark.parametrize(
    ("flt", "indexes"),
    [
        (AuditFilter(), list(range(10))),
        (AuditFilter(subject=A), [0, 2, 3, 7]),
        (AuditFilter(subject=C), [6, 9]),
        (AuditFilter(purpose="points_exchange:"), [3]),
        (AuditFilter(recipient="coffee.example"), [3]),
        (AuditFilter(from_ts=T0 + timedelta(hours=2), to_ts=T0 + timedelta(hours=5)), [2, 3, 4]),
        (AuditFilter(action="dsr."), []),
    ],
    ids=["everything", "subject", "member-actor", "purpose", "recipient", "time", "nothing"],
)
def test_the_bundle_holds_exactly_the_events_the_filter_selects(
    trail: Trail, flt: AuditFilter, indexes: list[int]
) -> None:
    data = trail.bundle(flt)
    assert [event_obj(line)["index"] for line in split(data)[1:]] == indexes
    assert verify(data, trail.verifier).count == len(indexes)


def test_an_empty_log_gives_an_empty_bundle_that_verifies(tmp_path: Path) -> None:
    store = LedgerStore(create_engine(f"sqlite:///{tmp_path / 'empty.db'}"))
    store.create_schema()
    t = Trail(store.create_log("audit", f"{NODE}/audit"), note.Signer.generate(NODE))
    v = verify(t.bundle(), t.verifier)
    assert (v.count, v.tree_size) == (0, 0)
    store.close()


def test_a_bundle_proves_against_the_head_it_was_exported_at(trail: Trail) -> None:
    data = trail.bundle(AuditFilter(action="consent."))
    AuditTrail(trail.log, NODE).record(AuditEvent(node_id=NODE, actor=SERVICE, action="consent.grant"))
    v = verify(data, trail.verifier)
    assert (v.count, v.tree_size) == (5, 10)


def test_an_entry_that_is_not_an_audit_event_stops_the_export(trail: Trail) -> None:
    trail.log.append([b"event 10"])
    with pytest.raises(AuditEventError, match="ledger entry 10") as exc:
        trail.bundle()
    assert exc.value.index == 10


# --- tampering --------------------------------------------------------------------------

# a valid, different value for every field of the event at bundle position 1 (ledger index 2)
ALTERED: dict[str, Any] = {
    "action": "consent.renew",
    "actor": {"id": "mallory", "role": "operator", "type": "staff"},
    "consent_ids": ["c-2"],
    "details": {"k": 1},
    "dsr_id": "dsr-1",
    "event_id": "f" * 32,
    "legal_basis": "contract",
    "node_id": "b.example",
    "outcome": "denied",
    "pi_categories": ["contact.basic"],
    "purpose_code": "personalization",
    "reason_code": "expired",
    "recipient": {"contract_id": None, "id": "coffee.example", "role": "joint"},
    "record_count": 1,
    "request_id": "req-1",
    "retention_class": "legal_hold",
    "subject_count": 1,
    "subject_pseudo_ids": [B],
    "ts_utc": "2026-11-01T02:00:00.000001Z",
}


def test_the_tampering_table_covers_every_event_field() -> None:
    assert set(ALTERED) == set(AuditEvent.model_fields)


@pytest.mark.parametrize("field", sorted(ALTERED))
def test_one_altered_event_field_fails_naming_that_event(consent_bundle: tuple[bytes, Trail], field: str) -> None:
    data, t = consent_bundle
    lines = split(data)
    obj = event_obj(lines[2])
    assert obj["event"][field] != ALTERED[field]
    obj["event"][field] = ALTERED[field]
    AuditEvent.model_validate(obj["event"])  # still a valid event: only the ledger can tell
    lines[2] = line_of(obj)
    with pytest.raises(BundleError, match="leaf_hash") as exc:
        verify(b"".join(lines), t.verifier)
    assert (exc.value.index, exc.value.ledger_index) == (1, 2)


def test_an_altered_event_with_its_leaf_hash_recomputed_fails_its_inclusion_proof(
    consent_bundle: tuple[bytes, Trail],
) -> None:
    data, t = consent_bundle
    lines = split(data)
    obj = event_obj(lines[3])
    obj["event"]["outcome"] = "error"
    obj["leaf_hash"] = hashlib.sha256(b"\x00" + canonical_json(obj["event"])).hexdigest()
    lines[3] = line_of(obj)
    with pytest.raises(BundleError, match="inclusion proof") as exc:
        verify(b"".join(lines), t.verifier)
    assert (exc.value.index, exc.value.ledger_index) == (2, 4)


def test_reordered_events_fail(consent_bundle: tuple[bytes, Trail]) -> None:
    data, t = consent_bundle
    lines = split(data)
    lines[2], lines[3] = lines[3], lines[2]
    with pytest.raises(BundleError, match="strictly increase") as exc:
        verify(b"".join(lines), t.verifier)
    assert exc.value.index == 2


def test_a_dropped_event_fails_the_count(consent_bundle: tuple[bytes, Trail]) -> None:
    data, t = consent_bundle
    lines = split(data)
    del lines[3]
    with pytest.raises(BundleError, match="missing") as exc:
        verify(b"".join(lines), t.verifier)
    assert exc.value.index == 4


def test_a_dropped_event_with_the_count_lowered_fails_the_attestation(consent_bundle: tuple[bytes, Trail]) -> None:
    data, t = consent_bundle
    lines = split(data)
    del lines[3]
    lines[0] = line_of({**json.loads(lines[0]), "count": 4})
    with pytest.raises(BundleError, match="attestation") as exc:
        verify(b"".join(lines), t.verifier)
    assert exc.value.index is None


def test_an_added_event_line_fails(consent_bundle: tuple[bytes, Trail]) -> None:
    data, t = consent_bundle
    lines = split(data)
    with pytest.raises(BundleError, match="more event lines") as exc:
        verify(b"".join([*lines, lines[-1]]), t.verifier)
    assert exc.value.index == 5


def test_a_genuine_event_outside_the_filter_fails_naming_it(trail: Trail) -> None:
    lines = split(trail.bundle(AuditFilter(action="consent.")))
    lines[2] = split(trail.bundle(AuditFilter(action="pi.read")))[1]  # ledger index 1, with a valid proof
    with pytest.raises(BundleError, match="does not match the manifest's filter") as exc:
        verify(b"".join(lines), trail.verifier)
    assert (exc.value.index, exc.value.ledger_index) == (1, 1)


def test_an_event_outside_the_filter_fails_naming_it_even_if_re_signed(consent_bundle: tuple[bytes, Trail]) -> None:
    data, t = consent_bundle
    narrower = AuditFilter(action="consent.", to_ts=T0 + timedelta(hours=5)).to_dict()
    lines = reattest(split(data), t.signer, filter=narrower)
    with pytest.raises(BundleError, match="does not match the manifest's filter") as exc:
        verify(b"".join(lines), t.verifier)
    assert (exc.value.index, exc.value.ledger_index) == (3, 6)


def test_a_flipped_proof_byte_fails_naming_the_event(consent_bundle: tuple[bytes, Trail]) -> None:
    data, t = consent_bundle
    lines = split(data)
    obj = event_obj(lines[1])
    raw = bytearray(base64.b64decode(obj["proof"][1]))
    raw[7] ^= 0x01
    obj["proof"][1] = base64.b64encode(bytes(raw)).decode()
    lines[1] = line_of(obj)
    with pytest.raises(BundleError, match="inclusion proof") as exc:
        verify(b"".join(lines), t.verifier)
    assert (exc.value.index, exc.value.ledger_index) == (0, 0)


def test_a_bundle_fails_against_another_nodes_key(consent_bundle: tuple[bytes, Trail]) -> None:
    data, _ = consent_bundle
    with pytest.raises(BundleError, match="checkpoint"):
        verify(data, note.Signer.generate(NODE).verifier())


def test_a_checkpoint_signed_by_another_key_fails(consent_bundle: tuple[bytes, Trail]) -> None:
    data, t = consent_bundle
    lines = split(data)
    m = json.loads(lines[0])
    m["checkpoint"] = note.sign(note.parse(m["checkpoint"]).text, note.Signer.generate(NODE))
    lines[0] = line_of(m)
    with pytest.raises(BundleError, match="checkpoint") as exc:
        verify(b"".join(lines), t.verifier)
    assert exc.value.index is None


def test_a_checkpoint_with_a_second_signature_fails(consent_bundle: tuple[bytes, Trail]) -> None:
    data, t = consent_bundle
    lines = split(data)
    m = json.loads(lines[0])
    m["checkpoint"] += note.Signer.generate("witness.example").signature_line(note.parse(m["checkpoint"]).text)
    lines[0] = line_of(m)
    with pytest.raises(BundleError, match="exactly one signature"):
        verify(b"".join(lines), t.verifier)


@pytest.mark.parametrize(
    "change",
    [
        {"from_ts": "2020-01-01T00:00:00.000000Z"},  # wider: every event still matches
        {"to_ts": "2030-01-01T00:00:00.000000Z"},
        {"action": "consent.grant"},
        {"action": None},
    ],
    ids=["wider-from", "added-to", "narrower-action", "no-action"],
)
def test_a_manifest_with_a_changed_filter_fails(consent_bundle: tuple[bytes, Trail], change: dict[str, Any]) -> None:
    data, t = consent_bundle
    lines = split(data)
    m = json.loads(lines[0])
    m["filter"] = {**m["filter"], **change}
    lines[0] = line_of(m)
    with pytest.raises(BundleError, match="attestation"):
        verify(b"".join(lines), t.verifier)


def test_a_manifest_with_another_origin_or_size_fails(consent_bundle: tuple[bytes, Trail]) -> None:
    data, t = consent_bundle
    lines = split(data)
    for change in ({"origin": "a.example/exchange"}, {"tree_size": 9}, {"tree_size": 11}):
        tampered = [line_of({**json.loads(lines[0]), **change}), *lines[1:]]
        with pytest.raises(BundleError, match="manifest"):
            verify(b"".join(tampered), t.verifier)


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_changing_any_single_byte_fails(consent_bundle: tuple[bytes, Trail], data: st.DataObject) -> None:
    bundle, t = consent_bundle
    pos = data.draw(st.integers(0, len(bundle) - 1), label="position")
    byte = data.draw(st.integers(0, 255).filter(lambda b: b != bundle[pos]), label="new byte")
    tampered = bundle[:pos] + bytes([byte]) + bundle[pos + 1 :]
    with pytest.raises(BundleError):
        verify(tampered, t.verifier)


# --- the command line -------------------------------------------------------------------

runner = CliRunner()
cli = typer.Typer()
cli.add_typer(audit_app, name="audit")


@pytest.fixture
def node_dir(tmp_path: Path) -> Path:
    d = tmp_path / "node"
    init_node(d, NODE)
    node = Node.open(d)
    try:
        for ref in ("alice", "bob"):
            node.keyring.pseudonym(ref)
        alice, bob = (node.keyring.pseudonym(ref, create=False) for ref in ("alice", "bob"))
        AuditTrail(node.store.log("audit"), NODE).record_many(
            [
                AuditEvent(node_id=NODE, actor=SERVICE, action="consent.grant", subject_pseudo_ids=[alice]),
                AuditEvent(node_id=NODE, actor=SERVICE, action="pi.read", subject_pseudo_ids=[bob]),
                AuditEvent(node_id=NODE, actor=SERVICE, action="consent.withdraw", subject_pseudo_ids=[bob]),
                AuditEvent(node_id=NODE, actor=SERVICE, action="pi.read", subject_pseudo_ids=[alice]),
            ]
        )
    finally:
        node.dispose()
    return d


def _audit_events(d: Path) -> list[AuditEvent]:
    node = Node.open(d)
    try:
        return [e for _, e in AuditTrail(node.store.log("audit"), NODE).events()]
    finally:
        node.dispose()


def test_cli_export_then_verify_prints_ok_and_audits_the_export(node_dir: Path, tmp_path: Path) -> None:
    node = Node.open(node_dir)
    root = node.store.log("audit").head().root_hash.hex()
    node.dispose()
    out = tmp_path / "consent.jsonl"
    args = ["audit", "export", "--out", str(out), "--data-dir", str(node_dir), "--action", "consent."]
    exported = runner.invoke(cli, [*args, "--from", "2000-01-01T08:00:00+08:00"])
    assert exported.exit_code == 0, exported.output
    r = runner.invoke(cli, ["audit", "verify", str(out), "--vkey", str(node_dir / VKEY_FILE)])
    assert r.exit_code == 0, r.output
    assert r.stdout == f"OK 2 4 {root}\n"
    events = _audit_events(node_dir)
    assert len(events) == 5
    last = events[-1]
    assert (last.action, last.actor.type, last.actor.id, last.record_count) == ("audit.export", "staff", "cli", 2)
    assert last.details["filter.action"] == "consent."
    assert last.details["filter.from_ts"] == "2000-01-01T00:00:00.000000Z"
    assert (last.details["count"], last.details["tree_size"]) == (2, 4)
    assert not (tmp_path / "consent.jsonl.partial").exists()


def test_cli_export_by_member_selects_their_events_by_pseudonym(node_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "bob.jsonl"
    r = runner.invoke(cli, ["audit", "export", "--out", str(out), "--data-dir", str(node_dir), "--member", "bob"])
    assert r.exit_code == 0, r.output
    lines = split(out.read_bytes())
    assert [event_obj(line)["index"] for line in lines[1:]] == [1, 2]
    assert b"bob" not in out.read_bytes()
    bob = json.loads(lines[0])["filter"]["subject"]
    assert _audit_events(node_dir)[-1].subject_pseudo_ids == (bob,)


def test_cli_verify_of_a_tampered_bundle_exits_1_naming_the_event(node_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "all.jsonl"
    assert runner.invoke(cli, ["audit", "export", "--out", str(out), "--data-dir", str(node_dir)]).exit_code == 0
    lines = split(out.read_bytes())
    assert b'"outcome":"ok"' in lines[3]
    lines[3] = lines[3].replace(b'"outcome":"ok"', b'"outcome":"denied"')
    out.write_bytes(b"".join(lines))
    r = runner.invoke(cli, ["audit", "verify", str(out), "--vkey", str(node_dir / VKEY_FILE)])
    assert r.exit_code == 1
    assert "FAIL event 2 (ledger index 2)" in r.output
    assert "first bad event: 2" in r.output
    assert "OK" not in r.stdout


@pytest.mark.parametrize("member", ["alice", "nobody"], ids=["erased", "unknown"])
def test_cli_export_for_an_erased_or_unknown_member_is_a_clear_error(
    node_dir: Path, tmp_path: Path, member: str
) -> None:
    node = Node.open(node_dir)
    node.keyring.shred("alice")
    node.dispose()
    out = tmp_path / "m.jsonl"
    r = runner.invoke(cli, ["audit", "export", "--out", str(out), "--data-dir", str(node_dir), "--member", member])
    assert r.exit_code == 1
    assert f"member {member!r} has no pseudonym here" in r.output
    assert "Traceback" not in r.output
    assert not out.exists()
    assert len(_audit_events(node_dir)) == 4  # nothing exported, nothing audited


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-11-01"], "no time zone"),
        (["--to", "yesterday"], "not an ISO 8601 time"),
        (["--action", "consent.grnt"], "unknown audit action"),
        (["--from", "2026-11-02T00:00:00Z", "--to", "2026-11-01T00:00:00Z"], "before"),
    ],
    ids=["naive-time", "bad-time", "bad-action", "empty-range"],
)
def test_cli_export_with_a_bad_filter_is_a_clear_error(
    node_dir: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "x.jsonl"
    r = runner.invoke(cli, ["audit", "export", "--out", str(out), "--data-dir", str(node_dir), *args])
    assert r.exit_code == 1
    assert message in r.output
    assert not out.exists()
