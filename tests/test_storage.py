"""Durable log storage: atomic batches, O(log n) proofs, append-only, several logs per database."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from ledger import note
from ledger.compact import root_of
from ledger.errors import StorageError, TreeSizeError
from ledger.proof import verify_consistency, verify_inclusion
from ledger.rfc6962 import EMPTY_ROOT, leaf_hash
from ledger.storage import LedgerStore, TreeHead, create_engine


def _fill(log, n: int, batch: int = 7) -> list[bytes]:
    items = [f"entry {i}".encode() * (i % 5 + 1) for i in range(n)]
    for i in range(0, n, batch):
        log.append(items[i : i + batch])
    return items


def test_new_log_is_empty_with_the_empty_root(store: LedgerStore) -> None:
    log = store.create_log("audit", "n.example/audit")
    assert log.head() == TreeHead(0, EMPTY_ROOT)


def test_batch_append_reports_where_it_landed(store: LedgerStore) -> None:
    log = store.create_log("audit", "n.example/audit")
    first = log.append([b"a", b"b"])
    second = log.append([b"c"])
    assert (first.first_index, first.size) == (0, 2)
    assert (second.first_index, second.size) == (2, 3)
    assert second.root_hash == root_of(leaf_hash(x) for x in (b"a", b"b", b"c"))


def test_every_proof_at_every_size_verifies(store: LedgerStore) -> None:
    log = store.create_log("audit", "n.example/audit")
    items = _fill(log, 37)
    leaves = [leaf_hash(x) for x in items]
    for n in range(1, 38):
        root = log.root_at(n)
        assert root == root_of(leaves[:n])
        for i in range(n):
            verify_inclusion(i, n, leaves[i], log.inclusion_proof(i, n), root)
        for m in range(1, n + 1):
            verify_consistency(m, n, log.root_at(m), root, log.consistency_proof(m, n))


def test_proofs_read_only_log_n_rows_and_never_rehash(store: LedgerStore) -> None:
    log = store.create_log("audit", "n.example/audit")
    _fill(log, 1000, batch=250)
    statements: list[str] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def record(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    proof = log.inclusion_proof(517, 1000)
    consistency = log.consistency_proof(300, 1000)
    entry_queries = [s for s in statements if "ledger_entry" in s]
    assert len(entry_queries) == 2  # one indexed IN (...) query per proof, whatever the log's size
    assert len(proof) <= 10
    assert len(consistency) <= 2 * 10


def test_entries_cannot_be_updated_or_deleted_even_with_raw_sql(store: LedgerStore) -> None:
    log = store.create_log("audit", "n.example/audit")
    log.append([b"kept"])
    for stmt in ("UPDATE ledger_entry SET data = :d", "DELETE FROM ledger_entry"):
        with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
            conn.execute(text(stmt), {"d": b"changed"})
    assert log.entry(0).data == b"kept"


def test_logs_in_one_database_are_independent(store: LedgerStore) -> None:
    audit = store.create_log("audit", "n.example/audit")
    exchange = store.create_log("exchange", "n.example/exchange")
    audit.append([b"a1", b"a2"])
    exchange.append([b"x1"])
    assert audit.size == 2
    assert exchange.size == 1
    assert [e.data for e in exchange.entries()] == [b"x1"]
    assert store.log_names() == ["audit", "exchange"]


def test_a_log_name_or_origin_cannot_be_reused(store: LedgerStore) -> None:
    store.create_log("audit", "n.example/audit")
    with pytest.raises(StorageError):
        store.create_log("audit", "n.example/other")
    with pytest.raises(StorageError):
        store.create_log("other", "n.example/audit")


def test_an_unknown_log_is_a_clear_error(store: LedgerStore) -> None:
    with pytest.raises(StorageError, match="no log named"):
        store.log("missing")


def test_bad_appends_change_nothing(store: LedgerStore) -> None:
    log = store.create_log("audit", "n.example/audit")
    log.append([b"a"])
    with pytest.raises(StorageError):
        log.append([])
    with pytest.raises(StorageError):
        log.append([b"ok", "not bytes"])  # type: ignore[list-item]
    with pytest.raises(StorageError):
        log.append([b"x" * ((1 << 20) + 1)])
    assert log.size == 1


def test_proofs_beyond_the_committed_size_are_refused(store: LedgerStore) -> None:
    log = store.create_log("audit", "n.example/audit")
    log.append([b"a", b"b"])
    with pytest.raises(TreeSizeError):
        log.inclusion_proof(0, 3)
    with pytest.raises(TreeSizeError):
        log.consistency_proof(1, 3)
    with pytest.raises(TreeSizeError):
        log.entry(2)


def test_a_reopened_store_continues_the_same_tree(db_url: str) -> None:
    first = LedgerStore(create_engine(db_url))
    first.create_schema()
    first.create_log("audit", "n.example/audit").append([b"a", b"b", b"c"])
    first.close()
    again = LedgerStore(create_engine(db_url))
    log = again.log("audit")
    log.append([b"d", b"e"])
    assert log.head().root_hash == root_of(leaf_hash(x) for x in (b"a", b"b", b"c", b"d", b"e"))
    assert log.recompute().size == 5
    again.close()


def test_two_stores_appending_to_one_log_interleave_whole_batches(db_url: str) -> None:
    stores = [LedgerStore(create_engine(db_url)) for _ in range(2)]
    stores[0].create_schema()
    stores[0].create_log("audit", "n.example/audit")
    errors: list[BaseException] = []

    def writer(s: LedgerStore, tag: int) -> None:
        log = s.log("audit")
        for i in range(15):
            for _attempt in range(50):
                try:
                    log.append([f"{tag}-{i}-{j}".encode() for j in range(4)])
                    break
                except StorageError:
                    continue  # the other store moved the head first: retry on the new head
            else:
                errors.append(RuntimeError("append never succeeded"))

    threads = [threading.Thread(target=writer, args=(s, n)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    log = stores[0].log("audit")
    assert log.recompute().size == 2 * 15 * 4
    datas = [e.data.decode() for e in log.entries()]
    for k in range(0, len(datas), 4):  # batches are never split
        assert len({d.rsplit("-", 1)[0] for d in datas[k : k + 4]}) == 1
    for s in stores:
        s.close()


def test_checkpoints_are_signed_once_per_size_and_carry_cosignatures(store: LedgerStore) -> None:
    signer = note.Signer.generate("n.example")
    log = store.create_log("audit", "n.example/audit")
    log.append([b"a"])
    signed = log.sign_checkpoint(signer)
    assert log.sign_checkpoint(signer) == signed
    line = "\u2014 w.example AAAAAA==\n"
    log.add_cosignature(1, "w.example", line)
    log.add_cosignature(1, "w.example", line)
    assert log.latest_checkpoint() == signed + line
    assert log.last_cosigned_size("w.example", 10) == 1
    assert log.last_cosigned_size("other", 10) == 0


def test_witness_state_only_moves_from_the_expected_head(store: LedgerStore) -> None:
    state = store.witness_state()
    head1, head2 = TreeHead(3, b"\x01" * 32), TreeHead(5, b"\x02" * 32)
    assert state.latest("o") is None
    assert state.compare_and_set("o", None, head1)
    assert not state.compare_and_set("o", None, head2)
    assert not state.compare_and_set("o", TreeHead(3, b"\x09" * 32), head2)  # same size, other root
    assert state.compare_and_set("o", head1, head2)
    assert state.latest("o") == head2


def test_a_failure_inside_the_append_transaction_leaves_nothing_and_the_next_append_works(
    store: LedgerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = store.create_log("audit", "n.example/audit")
    log.append([b"a"])

    def boom(self, leaves):  # type: ignore[no-untyped-def]
        raise RuntimeError("disk on fire")

    with monkeypatch.context() as m:
        m.setattr("ledger.compact.CompactRange.extend", boom)
        with pytest.raises(RuntimeError):
            log.append([b"b", b"c"])
    assert log.size == 1
    log.append([b"b", b"c"])
    assert log.recompute().size == 3
