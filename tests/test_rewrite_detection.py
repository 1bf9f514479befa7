"""An entry rewritten in the database behind the ledger's back (append-only trigger dropped, one byte of
its data changed, its stored subtree hashes left alone) is caught by `chain verify` and refused by
`ledger export`: both rehash the data they vouch for instead of trusting the stored tree."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from contracts.client import Alliance, Chain
from contracts.verify import Anchor, check_against_chain
from ledger import note
from ledger.errors import ExportError, StorageError
from ledger.export import export_log
from ledger.storage import INDEX_BITS, LedgerStore, create_engine
from node.cli.main import app
from node.core.datadir import init_node
from node.runtime import Node

ENTRIES = 21  # odd: the last entry completes no stored subtree, so only the head vouches for it
ANCHORED = (12, ENTRIES)


def rewrite_byte(db: Path, log_name: str, index: int, position: int = 0) -> None:
    """What anyone holding the database file can do: drop the append-only trigger, flip one byte of an entry."""
    with closing(sqlite3.connect(db)) as conn, conn:  # closed, after the transaction commits
        conn.execute("DROP TRIGGER IF EXISTS ledger_entry_no_update")
        (log_id,) = conn.execute("SELECT id FROM ledger_log WHERE name = ?", (log_name,)).fetchone()
        key = (log_id << INDEX_BITS) + index
        (data,) = conn.execute("SELECT data FROM ledger_entry WHERE entry_key = ?", (key,)).fetchone()
        data = bytearray(data)
        data[position % len(data)] ^= 0x01
        conn.execute("UPDATE ledger_entry SET data = ? WHERE entry_key = ?", (bytes(data), key))


# --- the node's commands -----------------------------------------------------------------------------


@pytest.fixture
def anchored_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """A node whose audit log is anchored at two sizes on an embedded chain; `chain verify` reaches that chain."""
    init_node(tmp_path / "n", "n.example")
    node = Node.open(tmp_path / "n")
    log = node.store.log("audit")
    base = log.size  # opening a node may already have audited something
    log.append([f"event {i}".encode() for i in range(ENTRIES - base)])
    chain = Chain.embedded()
    owner, account = chain.accounts[:2]
    alliance = Alliance.deploy(chain, owner)
    alliance.add_brand(account, "n.example", owner)
    for size in ANCHORED:
        alliance.post_anchor(log.origin, size, log.root_at(size), account)
    node.dispose()
    # the command connects by URL; the embedded chain has none, so it is handed over directly
    monkeypatch.setattr(Chain, "connect", staticmethod(lambda rpc, timeout=10.0: chain))
    return tmp_path / "n", alliance.anchor.address


def chain_verify(data_dir: Path, anchor: str):  # type: ignore[no-untyped-def]
    args = ["chain", "verify", "--data-dir", str(data_dir), "--rpc", "http://embedded", "--anchor", anchor]
    return CliRunner().invoke(app, args)


def test_chain_verify_passes_on_an_untouched_anchored_log(anchored_node) -> None:  # type: ignore[no-untyped-def]
    data_dir, anchor = anchored_node
    r = chain_verify(data_dir, anchor)
    assert r.exit_code == 0, r.output
    assert " ".join(r.output.split()).count("n.example/audit anchored size") == len(ANCHORED)


def test_chain_verify_reports_an_entry_rewritten_before_an_anchored_size_as_divergence(anchored_node) -> None:  # type: ignore[no-untyped-def]
    data_dir, anchor = anchored_node
    rewrite_byte(data_dir / "node.db", "audit", 4)
    r = chain_verify(data_dir, anchor)
    assert r.exit_code == 1, r.output
    text = " ".join(r.output.split())
    assert "n.example/audit anchored size 12 DIVERGED" in text
    assert "n.example/audit anchored size 21 DIVERGED" in text
    assert "entries 4..5" in text  # one of the two entries sharing the first stored subtree that differs


def test_chain_verify_reports_a_rewritten_last_entry_that_only_the_head_vouches_for(anchored_node) -> None:  # type: ignore[no-untyped-def]
    data_dir, anchor = anchored_node
    rewrite_byte(data_dir / "node.db", "audit", ENTRIES - 1)
    r = chain_verify(data_dir, anchor)
    assert r.exit_code == 1, r.output
    text = " ".join(r.output.split())
    assert "n.example/audit anchored size 12 ok" in text
    assert f"n.example/audit anchored size {ENTRIES} DIVERGED" in text


def test_chain_verify_reports_an_entry_rewritten_after_every_anchor_as_a_divergence_of_the_local_log(
    anchored_node,
) -> None:  # type: ignore[no-untyped-def]
    data_dir, anchor = anchored_node
    node = Node.open(data_dir)
    size = node.store.log("audit").append([b"later 1", b"later 2", b"later 3", b"later 4"]).size
    node.dispose()
    rewrite_byte(data_dir / "node.db", "audit", ENTRIES + 1)
    r = chain_verify(data_dir, anchor)
    assert r.exit_code == 1, r.output
    text = " ".join(r.output.split())
    assert "n.example/audit anchored size 12 ok" in text
    assert f"n.example/audit anchored size {ENTRIES} ok" in text
    assert f"n.example/audit local size {size} DIVERGED" in text
    assert f"entries {ENTRIES + 1}..{ENTRIES + 2}" in text


def test_ledger_export_refuses_a_rewritten_log_and_leaves_no_export(anchored_node, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data_dir, _ = anchored_node
    rewrite_byte(data_dir / "node.db", "audit", 4)
    target = tmp_path / "audit.jsonl"
    r = CliRunner().invoke(
        app, ["ledger", "export", "--log", "audit", "--out", str(target), "--data-dir", str(data_dir)]
    )
    assert r.exit_code == 1, r.output
    assert "do not hash to" in " ".join(r.output.split())
    assert not target.exists()
    assert not target.with_name(target.name + ".partial").exists()


# --- the library, on a plain store ---------------------------------------------------------------------

SIGNER = note.Signer.generate("example.com/logs/audit")
ITEMS = [f"event {i} {'x' * (i % 7)}".encode() for i in range(37)]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rewrite") / "ledger.db"
    store = LedgerStore(create_engine(f"sqlite:///{path}"))
    store.create_schema()
    store.create_log("audit", "example.com/logs/audit").append(ITEMS)
    store.close()
    return path


@pytest.fixture(scope="module")
def log(db: Path):  # type: ignore[no-untyped-def]
    store = LedgerStore(create_engine(f"sqlite:///{db}"))
    yield store.log("audit")
    store.close()


@pytest.fixture(scope="module")
def original_roots(log) -> dict[int, bytes]:  # type: ignore[no-untyped-def]
    return {n: log.root_at(n) for n in range(1, len(ITEMS) + 1)}


@contextmanager
def flipped(db: Path, index: int, position: int) -> Iterator[None]:
    """One byte of entry ``index`` flipped for the duration (flipped back afterwards, for the next example)."""
    rewrite_byte(db, "audit", index, position)
    try:
        yield
    finally:
        rewrite_byte(db, "audit", index, position)


def test_rehash_of_an_untouched_log_agrees_with_its_stored_tree(log, original_roots) -> None:  # type: ignore[no-untyped-def]
    r = log.rehash(at=[5, 37])
    assert r.ok
    assert r.rewritten is None
    assert r.roots == {5: original_roots[5], 37: original_roots[37]}


def test_rehash_names_the_pair_of_entries_holding_a_rewritten_byte(db: Path, log) -> None:  # type: ignore[no-untyped-def]
    with flipped(db, 10, 3):
        r = log.rehash()
    assert not r.ok
    assert r.rewritten == range(10, 12)
    assert "entry 11" in r.problem


def test_ledger_check_still_fails_on_a_rewritten_entry(db: Path, log) -> None:  # type: ignore[no-untyped-def]
    with flipped(db, 10, 3), pytest.raises(StorageError, match="stored subtree hashes differ from its data"):
        log.recompute()


def test_export_refuses_a_log_whose_data_no_longer_hash_to_its_head(db: Path, log) -> None:  # type: ignore[no-untyped-def]
    out = io.BytesIO()
    with flipped(db, 36, 0), pytest.raises(ExportError, match="do not hash to"):
        export_log(log, SIGNER, out)
    assert b'"checkpoint"' not in out.getvalue()  # nothing that looks like a finished export


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_single_flipped_byte_before_an_anchored_size_is_reported(db: Path, log, original_roots, data) -> None:  # type: ignore[no-untyped-def]
    size = data.draw(st.integers(1, len(ITEMS)), label="anchored size")
    index = data.draw(st.integers(0, size - 1), label="rewritten entry")
    position = data.draw(st.integers(0, len(ITEMS[index]) - 1), label="byte")
    with flipped(db, index, position):
        findings = check_against_chain(log, [Anchor(size, original_roots[size])])
        with pytest.raises(ExportError):
            export_log(log, SIGNER, io.BytesIO())
    assert [f.kind for f in findings] == ["diverged"]
