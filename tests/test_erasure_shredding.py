"""Crypto-shredding leaves no copy of the shredded key on disk: SQLite overwrites deleted content
(``secure_delete``) and the write-ahead log is checkpointed and truncated after every erasure and purge.

The SQLite that Python ships is often built with ``secure_delete`` on by default; the fixtures turn it
off on every new connection first, as a build with the upstream default would, so these tests show what
the node itself does rather than what the build happens to do.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from compliance_fixtures import notice_data
from sqlalchemy import Engine, event, select

from compliance.consent import ConsentAction
from compliance.notices import parse_notice
from compliance.pseudonyms import MemberKeyRecord
from compliance.store import ConsentRow
from ledger.storage import LedgerStore, create_engine
from node.runtime import Node

LATER = datetime.now(UTC) + timedelta(days=4 * 366)  # past the three years consent evidence is kept


def _secure_delete_off_first(engine: Engine) -> None:
    """Make every new connection of ``engine`` start with ``secure_delete`` off, before any other setup."""

    def off(dbapi_conn: Any, _record: object) -> None:
        dbapi_conn.execute("PRAGMA secure_delete=OFF")

    event.listen(engine, "connect", off, insert=True)
    engine.dispose()  # connections made before the listener are replaced by ones made after it


@pytest.fixture
def sqlite_node(node: Node) -> Node:
    """The test node on SQLite, as if SQLite's build left ``secure_delete`` off, with one member, M-1."""
    node.store.close()  # the writer connection too: every connection from here on is a new one
    _secure_delete_off_first(node.store.engine)
    node.consent.publish_notice(parse_notice(notice_data()))
    node.consent.register_member("M-1", date(1990, 1, 1))
    node.consent.change("M-1", ["marketing"], ConsentAction.GRANT)
    return node


def _stored_key(node: Node, member_ref: str) -> bytes:
    """The exact bytes of the member's key row's ``key`` column."""
    t = MemberKeyRecord.__table__
    with node.store.engine.connect() as conn:
        key = conn.execute(select(t.c.key).where(t.c.ref_index == node.cipher.index(member_ref))).scalar_one()
    return bytes(key)


def _database_bytes(node: Node) -> dict[str, bytes]:
    """The database file and, while the node has it, its write-ahead log, as they are on disk now."""
    db = node.settings.data_dir / "node.db"
    files = [db, db.with_name("node.db-wal")]
    return {f.name: f.read_bytes() for f in files if f.exists()}


def test_every_sqlite_connection_overwrites_deleted_content(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    _secure_delete_off_first(engine)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
    finally:
        engine.dispose()


def test_an_erased_members_key_is_in_neither_the_database_nor_its_wal(sqlite_node: Node) -> None:
    key = _stored_key(sqlite_node, "M-1")
    assert len(key) == 32  # stored raw: these are the bytes shredding must remove
    assert any(key in content for content in _database_bytes(sqlite_node).values())
    sqlite_node.rights.erase("M-1")
    for name, content in _database_bytes(sqlite_node).items():
        assert key not in content, f"the erased key is still in {name}"


def test_a_retention_purge_leaves_no_purged_record_in_the_database_or_its_wal(sqlite_node: Node) -> None:
    gone = sqlite_node.keyring.pseudonym("M-1", create=False)
    t = ConsentRow.__table__
    with sqlite_node.store.engine.connect() as conn:
        receipt = conn.execute(select(t.c.receipt).where(t.c.member == gone)).scalar_one()
    signature = receipt.strip().splitlines()[-1].encode()  # the signed note's own line: in this row only
    assert any(signature in content for content in _database_bytes(sqlite_node).values())
    sqlite_node.rights.erase("M-1")
    assert sqlite_node.retention.purge(LATER).consent_records == 1
    for name, content in _database_bytes(sqlite_node).items():
        assert signature not in content, f"the purged consent record is still in {name}"


def test_checkpointing_the_wal_empties_it_on_sqlite_and_does_nothing_elsewhere(store: LedgerStore) -> None:
    store.create_log("a", "example.com/a").append([b"an entry"])
    store.checkpoint_wal()
    if store.engine.dialect.name == "sqlite":
        wal = Path(store.engine.url.database or "").with_name("ledger.db-wal")
        assert wal.stat().st_size == 0
    assert store.log("a").size == 1  # nothing lost on the way


def test_an_erasure_beside_a_reader_succeeds_at_once_and_empties_the_wal_once_the_reader_is_gone(
    sqlite_node: Node,
) -> None:
    key = _stored_key(sqlite_node, "M-1")
    reader = sqlite3.connect(sqlite_node.settings.data_dir / "node.db")
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM compliance_member_key").fetchone()  # holds a snapshot of the WAL
    try:
        started = time.perf_counter()
        sqlite_node.rights.erase("M-1")  # committed: the checkpoint after it is best effort, never an error
        assert time.perf_counter() - started < 5
        assert not sqlite_node.store.checkpoint_wal(wait=0.1)  # the reader still holds the log
    finally:
        reader.rollback()
        reader.close()
    assert sqlite_node.store.checkpoint_wal()
    for name, content in _database_bytes(sqlite_node).items():
        assert key not in content, f"the shredded key is still in {name}"
