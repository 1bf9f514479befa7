"""Decommissioning a node (PIPL-ROLE-02, Art. 21: delete at the end of the entrustment): the data key and every
member key shredded, nothing readable left on disk, a signed deletion attestation the brand verifies offline,
and a node that refuses to open or serve afterwards.

As in tests/test_erasure_shredding.py, the node's SQLite connections start with ``secure_delete`` off, so what
is shown is what the node itself does, not what the SQLite build happens to default to.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from compliance_fixtures import notice_data
from entrustment_fixtures import contract
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, func, select
from typer.testing import CliRunner

from compliance.attestation import ATTESTATION_FILE, AttestationError, verify
from compliance.audit import AuditTrail
from compliance.consent import ConsentAction
from compliance.entrustment import save_entrustment
from compliance.fieldcrypt import load_key_file
from compliance.notices import parse_notice
from compliance.pseudonyms import MemberErasedError, MemberKeyRecord
from ledger import note
from ledger.errors import NoteError
from node.api.app import create_app
from node.cli.main import app
from node.core.auth import Caller, Role, current_caller
from node.core.datadir import NodeDecommissionedError
from node.ops.decommission import DecommissionRefusedError, decommission
from node.runtime import Node

runner = CliRunner()
MEMBERS = ("M-1", "M-2", "KID-1")


def _secure_delete_off_first(engine: Engine) -> None:
    def off(dbapi_conn: Any, _record: object) -> None:
        dbapi_conn.execute("PRAGMA secure_delete=OFF")

    event.listen(engine, "connect", off, insert=True)
    engine.dispose()


@pytest.fixture
def hosted(node: Node) -> Node:
    """The test node hosted under a contract: members with birth dates, a guardian and a phone, consents, a host key."""
    node.store.close()
    _secure_delete_off_first(node.store.engine)
    node.consent.publish_notice(parse_notice(notice_data()))
    node.consent.register_member("M-1", date(1990, 1, 1))
    node.consent.register_member("M-2")
    node.consent.register_member("KID-1", date(2016, 5, 6), guardian_ref="M-1")
    node.consent.set_phone("M-1", "13800138000")
    node.consent.change("M-1", ["marketing"], ConsentAction.GRANT)
    save_entrustment(node.settings.data_dir, contract())
    node.staff_keys.issue("hugo", Role.HOST)
    return node


def _decommission(node: Node) -> Any:
    """Decommission ``node`` in this process, acting as its host "hugo" (as `--as hugo` does)."""
    token = current_caller.set(Caller(Role.HOST, "hugo"))
    try:
        return decommission(node)
    finally:
        current_caller.reset(token)


def _member_keys(node: Node) -> list[bytes]:
    t = MemberKeyRecord.__table__
    with node.store.engine.connect() as conn:
        return [bytes(k) for k in conn.execute(select(t.c.key)).scalars()]


def _database_bytes(node: Node) -> dict[str, bytes]:
    db = node.settings.data_dir / "node.db"
    return {f.name: f.read_bytes() for f in (db, db.with_name("node.db-wal")) if f.exists()}


def _every_file(data_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in data_dir.rglob("*") if p.is_file()}


def _state(node: Node) -> tuple[object, ...]:
    """What a decommission would change: the data key, the member keys, the audit log, the attestation."""
    data_key = node.settings.data_dir / "data.key"
    return (
        data_key.read_bytes() if data_key.exists() else None,
        sorted(_member_keys(node)),
        node.store.log("audit").size,
        (node.settings.data_dir / ATTESTATION_FILE).exists(),
    )


@pytest.mark.parametrize(
    ("typed", "extra"),
    [("wrong.example\n", []), ("N.EXAMPLE\n", []), ("\n", []), ("", []), ("n.example\n", ["--as", "nobody"])],
    ids=["another id", "the id in capitals", "nothing typed", "no input at all", "a name holding no key"],
)
def test_without_the_typed_node_id_and_a_staff_name_decommission_changes_nothing(
    hosted: Node, typed: str, extra: list[str]
) -> None:
    before = _state(hosted)
    who = extra or ["--as", "hugo"]
    r = runner.invoke(app, ["decommission", *who, "--data-dir", str(hosted.settings.data_dir)], input=typed)
    assert r.exit_code == 1, r.output
    assert "nothing was changed" in r.output or "holds no active" in r.output
    assert _state(hosted) == before


def test_decommission_with_the_typed_node_id_shreds_the_keys_and_writes_the_attestation(hosted: Node) -> None:
    data_dir = hosted.settings.data_dir
    hosted.dispose()
    r = runner.invoke(app, ["decommission", "--as", "hugo", "--data-dir", str(data_dir)], input="n.example\n")
    assert r.exit_code == 0, r.output
    assert not (data_dir / "data.key").exists()
    assert verify((data_dir / ATTESTATION_FILE).read_text(), hosted.signer.verifier()).member_keys == len(MEMBERS)


def test_decommission_overwrites_the_data_key_in_place_before_deleting_it(hosted: Node, tmp_path: Path) -> None:
    data_key = hosted.settings.data_dir / "data.key"
    key_text = data_key.read_bytes()
    same_file = tmp_path / "another-name-for-data.key"
    os.link(data_key, same_file)  # a second name for the same blocks: what deleting alone would leave readable
    _decommission(hosted)
    assert not data_key.exists()
    assert same_file.read_bytes() != key_text
    assert key_text.strip() not in same_file.read_bytes()


def test_after_decommission_no_member_key_is_in_the_database_or_its_wal_and_no_pseudonym_can_be_recomputed(
    hosted: Node,
) -> None:
    keys = _member_keys(hosted)
    assert len(keys) == len(MEMBERS)
    assert all(any(k in content for content in _database_bytes(hosted).values()) for k in keys)
    _decommission(hosted)
    assert _member_keys(hosted) == []
    for name, content in _database_bytes(hosted).items():
        assert not [k for k in keys if k in content], f"a shredded member key is still in {name}"
    with pytest.raises(MemberErasedError):
        hosted.keyring.pseudonym("M-1", create=False)


def test_after_decommission_no_sealed_field_opens_because_its_key_is_nowhere_in_the_data_directory(
    hosted: Node,
) -> None:
    data_key = hosted.settings.data_dir / "data.key"
    key = bytes.fromhex(data_key.read_text().strip())
    sealed_before = hosted.consent.store.member("M-1")
    assert sealed_before is not None
    assert sealed_before.phone == "+8613800138000"  # sealed, and open while the key exists
    done = _decommission(hosted)
    assert done.attestation.sealed_values >= len(MEMBERS) + 3  # references, two birth dates, a guardian, a phone
    with pytest.raises(FileNotFoundError):
        load_key_file(data_key)
    for name, content in _every_file(hosted.settings.data_dir).items():
        assert key not in content, f"the data key is still in {name}"
        assert key.hex().encode() not in content, f"the data key (as text) is still in {name}"


def test_the_attestation_verifies_with_the_nodes_key_and_states_what_was_destroyed(hosted: Node) -> None:
    done = _decommission(hosted)
    a = verify((hosted.settings.data_dir / ATTESTATION_FILE).read_text(), hosted.signer.verifier())
    assert (a.node_id, a.contract_id, a.data_key, a.member_keys, a.wal) == (
        "n.example",
        "HOST-2026-001",
        "shredded",
        len(MEMBERS),
        "emptied",
    )
    assert a == done.attestation
    assert {(h.origin, h.size, h.root) for h in a.logs} == {
        (log.origin, log.size, log.head().root_hash) for log in map(hosted.store.log, hosted.store.log_names())
    }
    last = list(AuditTrail(hosted.store.log("audit"), "n.example").events())[-1][1]
    assert (last.action, last.record_count, last.actor.role) == ("pi.delete", len(MEMBERS), "host")
    assert last.recipient is not None
    assert (last.recipient.role, last.recipient.contract_id) == (
        "entrusted",
        "HOST-2026-001",
    )


def test_any_altered_byte_of_the_attestation_fails_verification(hosted: Node) -> None:
    signed = _decommission(hosted).signed.encode()
    verifier = hosted.signer.verifier()
    for i in range(len(signed)):
        altered = signed[:i] + bytes([signed[i] ^ 0x01]) + signed[i + 1 :]
        try:
            text = altered.decode()
        except UnicodeDecodeError:
            continue  # not text at all: nobody could even read it as a note
        with pytest.raises((NoteError, AttestationError)):
            verify(text, verifier)


def test_the_attestation_does_not_verify_with_another_nodes_key(hosted: Node) -> None:
    signed = _decommission(hosted).signed
    with pytest.raises(NoteError):
        verify(signed, note.Signer.generate("n.example").verifier())  # the same name, another key


def test_the_cli_verifies_an_attestation_offline_and_refuses_an_altered_one(hosted: Node, tmp_path: Path) -> None:
    signed = _decommission(hosted).signed
    vkey = str(hosted.settings.data_dir / "node.vkey")
    good, bad = tmp_path / "attestation.note", tmp_path / "altered.note"
    good.write_text(signed)
    bad.write_text(signed.replace(f"member-keys {len(MEMBERS)}", "member-keys 9"))
    ok = runner.invoke(app, ["decommission", "verify", str(good), "--vkey", vkey])
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("OK n.example")
    assert "HOST-2026-001" in ok.output
    refused = runner.invoke(app, ["decommission", "verify", str(bad), "--vkey", vkey])
    assert refused.exit_code == 1
    assert "does not verify" in refused.output


def test_a_decommissioned_node_refuses_to_serve(hosted: Node) -> None:
    _decommission(hosted)
    r = runner.invoke(app, ["serve", "--data-dir", str(hosted.settings.data_dir)])
    assert r.exit_code == 1
    assert "this node was decommissioned" in r.output
    with pytest.raises(NodeDecommissionedError):
        Node.open(hosted.settings.data_dir)


def test_a_server_left_running_is_not_ready_once_its_node_was_decommissioned(hosted: Node) -> None:
    client = TestClient(create_app(hosted))
    assert client.get("/ready").status_code == 200
    _decommission(hosted)
    r = client.get("/ready")
    assert r.status_code == 503
    assert [c["name"] for c in r.json()["checks"] if not c["ok"]] == ["decommissioned"]


def test_decommission_is_refused_and_changes_nothing_while_another_process_reads_the_database(hosted: Node) -> None:
    before = _state(hosted)
    reader = sqlite3.connect(hosted.settings.data_dir / "node.db")
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM compliance_member_key").fetchone()  # holds a snapshot of the WAL
    try:
        with pytest.raises(DecommissionRefusedError):
            _decommission(hosted)
    finally:
        reader.rollback()
        reader.close()
    assert _state(hosted) == before


def test_a_decommission_resumed_after_a_crash_attests_what_it_found_already_gone(hosted: Node) -> None:
    (hosted.settings.data_dir / "data.key").unlink()  # as if the first run stopped right after shredding
    (hosted.settings.data_dir / "entrustment.json").unlink()
    a = _decommission(hosted).attestation
    assert (a.data_key, a.contract_id, a.member_keys) == ("absent", None, len(MEMBERS))
    with hosted.store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(MemberKeyRecord.__table__)).scalar_one() == 0
