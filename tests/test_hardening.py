"""Failure modes found in review: hostile sizes, a locked database, racing schema setup,
lenient witnesses, read-only GETs, and node identities that could shadow each other."""

from __future__ import annotations

import sqlite3
import stat
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from ledger import note
from ledger.checkpoint import Checkpoint
from ledger.cosignature import cosign
from ledger.errors import CheckpointError, NoteError, StorageUnavailableError
from ledger.rfc6962 import EMPTY_ROOT
from ledger.storage import CheckpointRecord, LedgerStore, create_engine
from ledger.witness import AddCheckpoint, InconsistentCheckpoint, MemoryWitnessState, Witness
from node.api.app import create_app
from node.core.datadir import add_peer, init_node
from node.core.settings import CONFIG_FILE, VKEY_FILE, NodeSettings, Peer
from node.peers.witnessing import LocalWitness, request_cosignatures
from node.runtime import Node


@pytest.fixture
def pair(tmp_path: Path):  # type: ignore[no-untyped-def]
    for name in ("a", "b"):
        init_node(tmp_path / name, f"{name}.example", sqlite_busy_timeout=0.2)
    add_peer(tmp_path / "b", Peer(node_id="a.example", vkey=(tmp_path / "a" / VKEY_FILE).read_text().strip()))
    nodes = {name: Node.open(tmp_path / name) for name in ("a", "b")}
    yield nodes
    for n in nodes.values():
        n.dispose()


def _post(node: Node, body: bytes):  # type: ignore[no-untyped-def]
    client = TestClient(create_app(node), raise_server_exceptions=False)
    return client.post("/v1/witness/add-checkpoint", content=body)


@pytest.mark.parametrize(
    "body",
    [
        b"old " + b"9" * 5000 + b"\n\na.example/audit\n1\n" + b"A" * 44 + b"\n",
        b"old 1\n\na.example/audit\n" + b"9" * 5000 + b"\n" + b"A" * 44 + b"\n",
        b"old 0\n\na.example/audit\n9223372036854775808\n" + b"A" * 44 + b"\n",
    ],
)
def test_absurd_tree_sizes_are_a_400_not_a_500(pair, body: bytes) -> None:
    r = _post(pair["b"], body)
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/problem+json"


def test_a_checkpoint_beyond_int64_cannot_be_made() -> None:
    with pytest.raises(CheckpointError, match="2\\*\\*63"):
        Checkpoint("a.example/audit", 2**63, bytes(32))


def test_a_locked_database_gives_503_with_retry_after(pair, tmp_path: Path) -> None:
    signed = pair["a"].store.log("audit").sign_checkpoint(pair["a"].signer)
    blocker = sqlite3.connect(tmp_path / "b" / "node.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        r = _post(pair["b"], AddCheckpoint(0, (), signed).render().encode())
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert r.status_code == 503
    assert r.headers["retry-after"] == "1"
    assert _post(pair["b"], AddCheckpoint(0, (), signed).render().encode()).status_code == 200


def test_an_append_that_cannot_get_the_lock_is_a_storage_unavailable_error(pair, tmp_path: Path) -> None:
    log = pair["a"].store.log("audit")
    blocker = sqlite3.connect(tmp_path / "a" / "node.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StorageUnavailableError):
            log.append([b"x"])
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert log.append([b"x"]).size == 1


def test_reading_the_checkpoint_writes_nothing(pair) -> None:
    a = pair["a"]
    a.store.log("audit").append([b"e1", b"e2"])
    client = TestClient(create_app(a))

    def stored() -> int:
        with a.store.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(CheckpointRecord)).scalar_one()

    before = stored()
    served = client.get("/v1/logs/audit/checkpoint").text
    assert stored() == before
    assert served == a.store.log("audit").sign_checkpoint(a.signer)  # deterministic: the same bytes


def test_a_size_zero_checkpoint_must_carry_the_empty_root() -> None:
    log_key = note.Signer.generate("a.example")
    witness = Witness(note.Signer.generate("w.example"), lambda o: [log_key.verifier()], MemoryWitnessState())
    bogus = Checkpoint("a.example/audit", 0, b"\x01" * 32).sign(log_key)
    with pytest.raises(InconsistentCheckpoint):
        witness.add_checkpoint(AddCheckpoint(0, (), bogus))
    honest = Checkpoint("a.example/audit", 0, EMPTY_ROOT).sign(log_key)
    assert witness.add_checkpoint(AddCheckpoint(0, (), honest))


def test_racing_first_submissions_cannot_both_be_recorded(tmp_path: Path) -> None:
    store = LedgerStore(create_engine(f"sqlite:///{tmp_path / 'w.db'}"))
    store.create_schema()
    state = store.witness_state()
    from ledger.witness import TreeHead

    assert state.compare_and_set("o", None, TreeHead(0, EMPTY_ROOT))
    assert not state.compare_and_set("o", None, TreeHead(0, b"\x01" * 32))
    store.close()


class _ChattyWitness:
    """A witness that answers with an extra cosignature line from a key the client does not know."""

    def __init__(self, inner: LocalWitness, stranger: note.Signer) -> None:
        self.inner, self.stranger = inner, stranger
        self.name, self.cosigner = inner.name, inner.cosigner

    def add_checkpoint(self, request: AddCheckpoint) -> str:
        line = self.inner.add_checkpoint(request)
        text = note.parse(request.checkpoint).text
        return cosign(text, self.stranger, 1_700_000_000) + line


def test_extra_lines_from_unknown_witness_keys_are_ignored(pair) -> None:
    a, b = pair["a"], pair["b"]
    log = a.store.log("audit")
    log.append([b"e1"])
    chatty = _ChattyWitness(LocalWitness("b.example", b.witness), note.Signer.generate("z.example"))
    [outcome] = request_cosignatures(log, a.signer, [chatty])
    assert outcome.ok, outcome.detail
    assert len(note.parse(log.latest_checkpoint()).signatures) == 2  # the owner's and b's


def test_concurrent_schema_setup_is_safe(db_url: str) -> None:
    errors: list[BaseException] = []

    def setup() -> None:
        store = LedgerStore(create_engine(db_url))
        try:
            store.create_schema()
        except BaseException as exc:
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=setup) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors


def test_an_in_memory_sqlite_database_is_refused() -> None:
    with pytest.raises(ValueError, match="in-memory"):
        create_engine("sqlite://")


def test_the_config_file_is_private(tmp_path: Path) -> None:
    init_node(tmp_path / "n", "n.example")
    assert stat.S_IMODE((tmp_path / "n" / CONFIG_FILE).stat().st_mode) == 0o600
    add_peer(tmp_path / "n", Peer(node_id="p.example", vkey=note.Signer.generate("p.example").verifier().to_vkey()))
    assert stat.S_IMODE((tmp_path / "n" / CONFIG_FILE).stat().st_mode) == 0o600


@pytest.mark.parametrize("node_id", ["a/b", "a b", "a+b", "", "é"])
def test_node_ids_that_could_shadow_origins_or_key_names_are_refused(tmp_path: Path, node_id: str) -> None:
    with pytest.raises(ValueError, match="node_id"):
        NodeSettings(data_dir=tmp_path, node_id=node_id)


def test_a_peer_is_trusted_only_for_its_own_origins(pair) -> None:
    b = pair["b"]
    assert b.trusted_log_keys("a.example/audit")
    assert not b.trusted_log_keys("a.example/audit/extra")
    assert not b.trusted_log_keys("a.examplex/audit")
    assert not b.trusted_log_keys("a.example/")


def test_signature_lines_joined_by_a_unicode_line_separator_are_malformed() -> None:
    alice = note.Signer.generate("alice.example")
    signed = note.sign("hello\n", alice)
    other = note.Signer.generate("bob.example").signature_line("hello\n")
    with pytest.raises(NoteError):
        note.parse(signed.rstrip("\n") + "\u2028" + other)


@pytest.mark.postgres
def test_a_lost_postgres_writer_connection_is_replaced_before_the_next_append(pg_database: str) -> None:
    store = LedgerStore(create_engine(pg_database))
    store.create_schema()
    log = store.create_log("audit", "n.example/audit")
    log.append([b"first"])
    store._writer.driver_connection.close()  # what a server restart does to an idle connection
    assert log.append([b"second"]).size == 2
    store.close()
