"""Durable, append-only storage of named Merkle logs on SQLModel (SQLite or PostgreSQL).

Layout: one row per entry holding its data and the hashes of the perfect subtrees that
this leaf completes (level 1 upward, 32 bytes each). The perfect subtree ``(level, k)`` is
therefore found in the row of leaf ``(k + 1) * 2**level - 1`` (a leaf's own hash is one
SHA-256 of its data), so any proof costs one indexed query for O(log n) rows and nothing
is ever rehashed. Rows are keyed by one integer, ``log_id * 2**40 + index``, so an append
writes one B-tree (the table's own) rather than a table plus a composite-key index.

A batch append is one transaction that also moves the log's head (size and root) with a
compare-and-set, so a crash leaves the log before or after the batch and two writers can
never interleave. Entries have no update or delete path here, and the database refuses
both with a trigger.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Engine, LargeBinary, Text, case, event, func, insert, null, select, update
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel

from ledger import checkpoint as checkpoint_mod
from ledger import note
from ledger.compact import CompactRange, NodeId, perfect_nodes
from ledger.errors import StorageError, StorageUnavailableError, TreeSizeError, UnknownLogError
from ledger.proof import consistency_ranges, inclusion_ranges, resolve
from ledger.rfc6962 import EMPTY_ROOT, HASH_SIZE, leaf_hash
from ledger.witness import TreeHead

logger = logging.getLogger(__name__)
MAX_ENTRY_BYTES = 1 << 20
_READ_BATCH = 2000
INDEX_BITS = 40  # 1.1e12 entries per log; log ids up to 2**23 keep the key in a signed 64-bit integer
MAX_LOGS = 1 << 23
_LOG_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")


def _now() -> datetime:
    return datetime.now(UTC)


class LogRecord(SQLModel, table=True):
    """A named log and its head: the committed size and root hash."""

    __tablename__ = "ledger_log"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=200)
    origin: str = Field(unique=True, max_length=400)
    size: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    root_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=_now)


class EntryRecord(SQLModel, table=True):
    """One log entry, keyed by ``log_id * 2**40 + index``; never updated or deleted."""

    __tablename__ = "ledger_entry"
    entry_key: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    subtree_hashes: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class CheckpointRecord(SQLModel, table=True):
    """A checkpoint the log's owner signed."""

    __tablename__ = "ledger_checkpoint"
    log_id: int = Field(foreign_key="ledger_log.id", primary_key=True)
    size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    root_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    note: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=_now)


class CosignatureRecord(SQLModel, table=True):
    """A witness's cosignature line on one of this log's checkpoints."""

    __tablename__ = "ledger_cosignature"
    log_id: int = Field(foreign_key="ledger_log.id", primary_key=True)
    size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    witness: str = Field(primary_key=True, max_length=200)
    line: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=_now)


class WitnessRecord(SQLModel, table=True):
    """The latest tree head this node cosigned for another log's origin."""

    __tablename__ = "ledger_witnessed"
    origin: str = Field(primary_key=True, max_length=400)
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    root_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    updated_at: datetime = Field(default_factory=_now)


TABLES = [t.__table__ for t in (LogRecord, EntryRecord, CheckpointRecord, CosignatureRecord, WitnessRecord)]
_log_t, _entry_t, _cp_t, _cosig_t, _wit_t = TABLES

_APPEND_ONLY_SQL = {
    "sqlite": [
        "CREATE TRIGGER IF NOT EXISTS ledger_entry_no_update BEFORE UPDATE ON ledger_entry "
        "BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END",
        "CREATE TRIGGER IF NOT EXISTS ledger_entry_no_delete BEFORE DELETE ON ledger_entry "
        "BEGIN SELECT RAISE(ABORT, 'ledger entries are append-only'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION ledger_append_only() RETURNS trigger AS $$ "
        "BEGIN RAISE EXCEPTION 'ledger entries are append-only'; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER ledger_entry_append_only BEFORE UPDATE OR DELETE ON ledger_entry "
        "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()",
    ],
}
_PG_TRIGGER_EXISTS = "SELECT 1 FROM pg_trigger WHERE tgname = 'ledger_entry_append_only'"
_PG_SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(6962)"  # RFC 6962, as good a number as any


def _enable_wal(cur: Any, timeout: float) -> None:
    """Switch a SQLite database to WAL (once per file; the mode persists).

    Switching needs a moment alone with a fresh database file, and SQLite's busy handler does
    not wait for that, so processes opening a new node at once retry here instead of failing.
    """
    cur.execute("PRAGMA journal_mode")
    if cur.fetchone()[0].lower() == "wal":
        return
    deadline = time.monotonic() + timeout
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _create_private(path: str, mode: int) -> None:
    """Create the file ``path`` with ``mode`` unless it exists (an existing file keeps its mode).

    An existing database is never opened here: closing any descriptor of a file drops every POSIX
    lock the process holds on it, including those of SQLite connections open in other threads, and
    another process could then write under them (SQLite's "how to corrupt" guide, section 2.2).
    """
    if os.path.exists(path):
        return
    with suppress(FileExistsError):  # created meanwhile by another connection or process
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))


#: SQLite connections kept open per engine (anyio's thread pool, which serves requests, has 40 threads).
SQLITE_POOL = 40


def create_engine(
    url: str,
    *,
    sqlite_synchronous: str = "FULL",
    sqlite_busy_timeout: float = 30.0,
    sqlite_file_mode: int | None = None,
) -> Engine:
    """Create an engine for ``url``; SQLite gets WAL, a busy timeout and write transactions
    that take the write lock up front (``BEGIN IMMEDIATE``), so concurrent appenders queue
    instead of failing on a lock upgrade.

    Every SQLite connection sets ``secure_delete``, so deleted content is overwritten rather than
    left in free space. With ``sqlite_file_mode`` (e.g. ``0o600``) a database file that does not
    exist yet is created with that mode before SQLite opens it; SQLite gives the ``-wal`` and
    ``-shm`` files it creates the main file's mode, so all three get it.
    """
    if not url.startswith("sqlite"):
        return sa_create_engine(url, pool_pre_ping=True)
    if url in ("sqlite://", "sqlite:///:memory:") or ":memory:" in url or "mode=memory" in url:
        raise ValueError("an in-memory SQLite database cannot hold a durable log: give a file path")
    if sqlite_synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise ValueError(f"bad SQLite synchronous setting {sqlite_synchronous!r}")
    # a pool as large as a server's worker threads: under load a smaller pool opens and closes a
    # connection per request beyond it, each paying the pragmas below (seen as 6% of an exchange's CPU)
    engine = sa_create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": sqlite_busy_timeout},
        pool_size=SQLITE_POOL,
        max_overflow=SQLITE_POOL,
    )
    path = engine.url.database
    if sqlite_file_mode is not None and path and not engine.url.query.get("uri"):

        @event.listens_for(engine, "do_connect")
        def _before_connect(*_args: object) -> None:
            # the file exists before SQLite opens it, so SQLite keeps its mode and copies it to -wal
            # and -shm; no umask change, which would reach every file every thread of the process creates
            _create_private(path, sqlite_file_mode)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        _enable_wal(cur, sqlite_busy_timeout)
        cur.execute(f"PRAGMA synchronous={sqlite_synchronous.upper()}")
        cur.execute("PRAGMA foreign_keys=ON")
        # deleted rows are zeroed, not left in free pages: deleting a secret (crypto-shredding) must
        # really remove it; builds differ in their default, so never rely on it. Ledger entries are
        # never deleted, so this costs appends nothing.
        cur.execute("PRAGMA secure_delete=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("ledger_write", False):
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # through SQLAlchemy: "database is locked" becomes its error
        else:
            # a deferred BEGIN takes no lock and cannot fail that way: straight to the driver, since
            # every read pays for it and the statement machinery costs several times SQLite's own work
            conn.connection.driver_connection.execute("BEGIN")

    return engine


@dataclass(frozen=True)
class Entry:
    """A stored entry: its index, data and leaf hash."""

    index: int
    data: bytes
    leaf_hash: bytes


@dataclass(frozen=True)
class Rehash:
    """A log rehashed from its entries' data (:meth:`Log.rehash`), against its stored tree and head."""

    head: TreeHead  # the stored head the data was checked up to
    roots: dict[int, bytes]  # size -> the root the first `size` entries' data hash to, for each size asked for
    rewritten: range | None = None  # the entries holding the first difference, when the data can tell
    problem: str = ""  # the first difference, for people; empty when data, stored hashes and head agree

    @property
    def ok(self) -> bool:
        """The data, every stored subtree hash and the head agree."""
        return not self.problem


def _differing_leaves(index: int, computed: bytes, stored: bytes) -> range:
    """The leaves under the lowest stored subtree of entry ``index`` that differs from the one its data make.

    Entries are checked in order, so a single changed entry shows at the first level-1 hash over it: the pair
    ``index - 1, index``. Which of the two changed, the stored tree cannot tell (no leaf hash is stored).
    """
    level = next(
        (
            lv
            for lv in range(1, len(computed) // HASH_SIZE + 1)
            if computed[(lv - 1) * HASH_SIZE : lv * HASH_SIZE] != stored[(lv - 1) * HASH_SIZE : lv * HASH_SIZE]
        ),
        0,  # only the stored bytes past the subtrees this entry completes differ: the row itself was changed
    )
    return range(index + 1 - (1 << level), index + 1)


@dataclass(frozen=True)
class AppendResult:
    """Where a batch landed: its first index and the head after it."""

    first_index: int
    size: int
    root_hash: bytes


@dataclass(frozen=True)
class _AppendSql:
    """The append path's statements in the driver's own dialect.

    They go straight to the driver: building SQLAlchemy expressions and per-row parameter
    processing cost more than SQLite's own work for a small batch.
    """

    lock_head: str
    insert_entries: str
    move_head: str

    @classmethod
    def for_dialect(cls, name: str, paramstyle: str) -> _AppendSql:
        p = "?" if paramstyle == "qmark" else "%s"
        lock = " FOR UPDATE" if name == "postgresql" else ""  # SQLite locks the database at BEGIN IMMEDIATE
        return cls(
            lock_head=f"SELECT size FROM ledger_log WHERE id = {p}{lock}",
            insert_entries=f"INSERT INTO ledger_entry (entry_key, data, subtree_hashes) VALUES ({p}, {p}, {p})",
            move_head=f"UPDATE ledger_log SET size = {p}, root_hash = {p} WHERE id = {p} AND size = {p}",
        )


class LedgerStore:
    """All logs of one database, and the witness state of this node."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sql = _AppendSql.for_dialect(engine.dialect.name, engine.dialect.paramstyle)
        self.placeholder = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._logs: dict[str, Log] = {}
        self._lock = threading.Lock()
        self._writer_lock = threading.Lock()
        self._writer: Any = None

    def create_schema(self) -> None:
        """Create the ledger's tables and append-only triggers if they do not exist.

        Safe to call from several processes at once: on PostgreSQL one transaction-scoped
        advisory lock serialises them, and existing objects are left untouched (no DDL, so no
        exclusive table lock, when the schema is already there).
        """
        dialect = self.engine.dialect.name
        with self._write() as conn:
            if dialect == "postgresql":
                conn.exec_driver_sql(_PG_SCHEMA_LOCK)
            SQLModel.metadata.create_all(conn, tables=TABLES)
            if dialect == "postgresql" and conn.exec_driver_sql(_PG_TRIGGER_EXISTS).first():
                return
            for stmt in _APPEND_ONLY_SQL.get(dialect, []):
                conn.exec_driver_sql(stmt)

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction (on SQLite it takes the write lock at BEGIN)."""
        with self.engine.connect() as conn:
            conn.execution_options(ledger_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _append_transaction(self) -> Iterator[Any]:
        """A write transaction on this store's single writer connection, through the bare driver.

        One long-lived writer (appends from this process queue on a lock) and no SQLAlchemy
        statement machinery cut the fixed cost of an append from ~0.6 ms to a few tens of µs.
        """
        sqlite = self.engine.dialect.name == "sqlite"
        with self._writer_lock:
            if self._writer is not None and not sqlite and not self._writer_alive():
                self._drop_writer()  # e.g. the server restarted since the last append
            if self._writer is None:
                self._writer = self.engine.raw_connection()
            raw = self._writer.driver_connection
            cur = raw.cursor()
            try:
                if sqlite:
                    cur.execute("BEGIN IMMEDIATE")
                yield cur
                if sqlite:
                    cur.execute("COMMIT")
                else:
                    raw.commit()
            except BaseException as exc:
                with suppress(Exception):
                    cur.close()
                self._drop_writer()  # rolls back; a connection in an unknown state is not reused
                dbapi = self.engine.dialect.loaded_dbapi
                if isinstance(exc, (dbapi.OperationalError, dbapi.InterfaceError)):
                    raise StorageUnavailableError(f"the ledger database is busy or unreachable: {exc}") from exc
                raise
            cur.close()

    def _writer_alive(self) -> bool:
        try:
            with self._writer.driver_connection.cursor() as cur:
                cur.execute("SELECT 1")
        except Exception:  # any failure means: do not use this connection
            return False
        return True

    def _drop_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            with suppress(Exception):  # best effort on an already failing path
                writer.invalidate()  # discards the connection and whatever transaction it had open

    def checkpoint_wal(self, wait: float = 1.0) -> bool:
        """Copy SQLite's write-ahead log into the database file and truncate the log to zero bytes.

        The log keeps earlier versions of pages, deleted rows included, until it is overwritten:
        call this after deleting what must not survive on disk (with ``secure_delete``, which
        :func:`create_engine` sets, the database file keeps no copy either). Best effort: it waits
        at most ``wait`` seconds for readers, and returns False (logged) if one still holds the log,
        so a caller's committed work never fails or stalls writers for it; the log is emptied at the
        next call, or by SQLite when the last connection closes. Always True on other databases
        (PostgreSQL's WAL is the server's to recycle).
        """
        if self.engine.dialect.name != "sqlite":
            return True
        raw = self.engine.raw_connection()  # the bare driver: no BEGIN, which would keep the log in use
        try:
            driver = raw.driver_connection
            driver.execute(f"PRAGMA busy_timeout = {int(wait * 1000)}")
            busy, _frames, _copied = driver.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.OperationalError:  # the writer lock stayed taken: the same answer as busy
            busy = 1
        finally:
            raw.invalidate()  # its busy timeout is not the pool's any more: never reuse it
        if busy:
            logger.warning("SQLite's write-ahead log is in use by a reader: it is emptied at the next checkpoint")
        return not busy

    def close(self) -> None:
        """Release the writer connection and every pooled connection."""
        with self._writer_lock:
            self._drop_writer()
        self.engine.dispose()

    def create_log(self, name: str, origin: str) -> Log:
        """Create an empty log; raise :class:`StorageError` if the name or origin is taken."""
        checkpoint_mod.Checkpoint(origin, 0, EMPTY_ROOT)  # validates the origin
        if not _LOG_NAME.fullmatch(name):
            raise StorageError(f"invalid log name {name!r}: use 1-100 letters, digits, '.', '_' or '-'")
        try:
            with self._write() as conn:
                conn.execute(
                    insert(_log_t).values(name=name, origin=origin, size=0, root_hash=EMPTY_ROOT, created_at=_now())
                )
        except IntegrityError as exc:
            raise StorageError(f"a log named {name!r} or with origin {origin!r} already exists") from exc
        log = self.log(name)
        if log.id >= MAX_LOGS:
            raise StorageError(f"a database holds at most {MAX_LOGS} logs")
        return log

    def ensure_log(self, name: str, origin: str) -> Log:
        """Return the log ``name``, creating it with ``origin`` if needed."""
        try:
            log = self.log(name)
        except StorageError:
            return self.create_log(name, origin)
        if log.origin != origin:
            raise StorageError(f"log {name!r} has origin {log.origin!r}, not {origin!r}")
        return log

    def log(self, name: str) -> Log:
        """Return the existing log ``name`` or raise :class:`UnknownLogError`."""
        with self._lock:
            if name in self._logs:
                return self._logs[name]
        with self.engine.connect() as conn:
            row = conn.execute(select(_log_t.c.id, _log_t.c.origin).where(_log_t.c.name == name)).first()
        if row is None:
            there = ", ".join(self.log_names()) or "none yet"
            raise UnknownLogError(f"no log named {name!r} (the logs here: {there})")
        with self._lock:
            return self._logs.setdefault(name, Log(self, row.id, name, row.origin))

    def log_names(self) -> list[str]:
        """Names of every log in the database."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(_log_t.c.name).order_by(_log_t.c.name)).scalars())

    def witness_state(self) -> SqlWitnessState:
        """The database-backed state of this node's witness."""
        return SqlWitnessState(self)


class Log:
    """One append-only Merkle log. Thread-safe; several processes may append concurrently."""

    def __init__(self, store: LedgerStore, log_id: int, name: str, origin: str) -> None:
        self.store = store
        self.id = log_id
        self.name = name
        self.origin = origin
        self._base = log_id << INDEX_BITS
        self._frontier: CompactRange | None = None

    # --- writing -------------------------------------------------------------------------

    def append(self, items: Sequence[bytes], then: Callable[[Any, int], None] | None = None) -> AppendResult:
        """Append ``items`` atomically: all of them, in order, or none.

        ``then(cursor, first_index)`` runs inside the append's transaction, on the driver's own
        cursor (placeholders: :attr:`LedgerStore.placeholder`): a caller records where its entries
        landed in the same commit, so a crash can never leave an entry appended but unrecorded.
        """
        if not items:
            raise StorageError("nothing to append")
        for i, data in enumerate(items):
            if not isinstance(data, (bytes, bytearray)):
                raise StorageError(f"entry {i} of the batch is not bytes")
            if len(data) > MAX_ENTRY_BYTES:
                raise StorageError(f"entry {i} of the batch is larger than {MAX_ENTRY_BYTES} bytes")
        datas = [bytes(d) for d in items]
        leaves = [leaf_hash(d) for d in datas]
        sql = self.store.sql
        with self.store._append_transaction() as cur:
            cur.execute(sql.lock_head, (self.id,))
            (size,) = cur.fetchone()
            if size + len(datas) > 1 << INDEX_BITS:
                raise StorageError(f"log {self.name!r} is full")
            frontier = self._cached_frontier(size)
            key = self._base + size
            completed = frontier.extend(leaves)
            rows = [(key + i, data, done) for i, (data, done) in enumerate(zip(datas, completed, strict=True))]
            cur.executemany(sql.insert_entries, rows)
            root = frontier.root()
            cur.execute(sql.move_head, (frontier.size, root, self.id, size))
            moved = cur.rowcount
            if moved != 1:
                raise StorageError(f"log {self.name!r} moved during the append; retry")
            if then is not None:
                then(cur, size)
        self._frontier = frontier
        return AppendResult(size, frontier.size, root)

    def _cached_frontier(self, size: int) -> CompactRange:
        """A private copy of the compact range at ``size`` (reloaded if another writer moved the head)."""
        if self._frontier is not None and self._frontier.size == size:
            return self._frontier.copy()
        ids = perfect_nodes(0, size)
        with self.store.engine.connect() as conn:
            found = self._nodes(conn, ids)
        return CompactRange(size, [found[n] for n in ids])

    # --- reading -------------------------------------------------------------------------

    def head(self) -> TreeHead:
        """The committed size and root hash."""
        with self.store.engine.connect() as conn:
            row = conn.execute(select(_log_t.c.size, _log_t.c.root_hash).where(_log_t.c.id == self.id)).one()
        return TreeHead(row.size, bytes(row.root_hash))

    @property
    def size(self) -> int:
        """The committed number of entries."""
        return self.head().size

    def _check_size(self, size: int, committed: int) -> None:
        if not 0 <= size <= committed:
            raise TreeSizeError(f"tree size {size} is not between 0 and the log's size {committed}")

    def entry(self, index: int) -> Entry:
        """Return entry ``index`` or raise :class:`TreeSizeError`."""
        with self.store.engine.connect() as conn:
            data = (
                conn.execute(
                    select(_entry_t.c.data).where(_entry_t.c.entry_key == self._base + index)
                ).scalar_one_or_none()
                if 0 <= index < 1 << INDEX_BITS
                else None
            )
        if data is None:
            raise TreeSizeError(f"log {self.name!r} has no entry {index}")
        return Entry(index, bytes(data), leaf_hash(bytes(data)))

    def entries(self, start: int = 0, end: int | None = None) -> Iterator[Entry]:
        """Yield entries ``[start, end)`` in order, reading in bounded batches."""
        end = self.size if end is None else end
        while start < end:
            stop = min(end, start + _READ_BATCH)
            with self.store.engine.connect() as conn:
                rows = conn.execute(
                    select(_entry_t.c.entry_key, _entry_t.c.data)
                    .where(_entry_t.c.entry_key >= self._base + start, _entry_t.c.entry_key < self._base + stop)
                    .order_by(_entry_t.c.entry_key)
                ).all()
            for row in rows:
                data = bytes(row.data)
                yield Entry(row.entry_key - self._base, data, leaf_hash(data))
            if len(rows) != stop - start:
                raise StorageError(f"log {self.name!r} is missing entries in [{start}, {stop})")
            start = stop

    def _nodes(self, conn: Connection, ids: Sequence[NodeId]) -> dict[NodeId, bytes]:
        if not ids:
            return {}
        keys = {self._base + ((k + 1) << level) - 1: (level, k) for level, k in ids}
        leaf_keys = sorted(key for key, (level, _) in keys.items() if level == 0)
        # only leaves need their data (to hash it); other rows give just their subtree hashes
        data = case((_entry_t.c.entry_key.in_(leaf_keys), _entry_t.c.data), else_=None) if leaf_keys else null()
        rows = conn.execute(
            select(_entry_t.c.entry_key, data.label("data"), _entry_t.c.subtree_hashes).where(
                _entry_t.c.entry_key.in_(sorted({k for k in keys}))
            )
        ).all()
        by_key = {r.entry_key: r for r in rows}
        out: dict[NodeId, bytes] = {}
        for level, k in ids:
            row = by_key.get(self._base + ((k + 1) << level) - 1)
            if row is None:
                continue
            if level == 0:
                out[(level, k)] = leaf_hash(bytes(row.data))
            else:
                h = bytes(row.subtree_hashes)[(level - 1) * HASH_SIZE : level * HASH_SIZE]
                if len(h) == HASH_SIZE:
                    out[(level, k)] = h
        return out

    def _resolve(self, ranges: list[tuple[int, int]], size: int) -> list[bytes]:
        with self.store.engine.connect() as conn:
            committed = conn.execute(select(_log_t.c.size).where(_log_t.c.id == self.id)).scalar_one()
            self._check_size(size, committed)
            return resolve(ranges, lambda ids: self._nodes(conn, ids))

    def root_at(self, size: int) -> bytes:
        """The root hash of the tree of the first ``size`` entries."""
        if size == 0:
            return EMPTY_ROOT
        return self._resolve([(0, size)], size)[0]

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """The inclusion proof of entry ``index`` in the tree of size ``size``."""
        return self._resolve(inclusion_ranges(index, size), size)

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        """The consistency proof from tree size ``size1`` to ``size2``."""
        if size1 == size2:
            self._resolve([], size2)
            return []
        return self._resolve(consistency_ranges(size1, size2), size2)

    def recompute(self) -> TreeHead:
        """Rehash every entry from its data, check every stored subtree hash and the head; return the head.

        This is the full integrity check (O(n)); proofs and appends never need it. Raises
        :class:`StorageError` describing the first difference (see :meth:`rehash`).
        """
        rehashed = self.rehash()
        if not rehashed.ok:
            raise StorageError(rehashed.problem)
        return rehashed.head

    def rehash(self, at: Iterable[int] = ()) -> Rehash:
        """Rehash every entry up to the head from its data and compare with the stored tree (O(n) time, O(log n)
        memory); also return the root of the data's tree at each size in ``at`` (sizes beyond the head are left out).

        Proofs are built from stored subtree hashes, which a rewrite of an entry's data (anyone holding the database
        can drop the append-only trigger) leaves untouched: only this catches it. It goes on past a difference while
        a size of ``at`` is still to come, since the roots of the data are what anchored roots are compared with.
        """
        head = self.head()
        wanted = sorted({s for s in at if 0 <= s <= head.size})
        roots = {0: EMPTY_ROOT} if wanted and wanted[0] == 0 else {}
        pending = [s for s in wanted if s > 0]
        cr = CompactRange()
        rewritten: range | None = None
        problem = ""
        for start in range(0, head.size, _READ_BATCH):
            if problem and not pending:
                break  # nothing more to learn: the first difference is what a caller acts on
            stop = min(head.size, start + _READ_BATCH)
            with self.store.engine.connect() as conn:
                rows = conn.execute(
                    select(_entry_t.c.entry_key, _entry_t.c.data, _entry_t.c.subtree_hashes)
                    .where(_entry_t.c.entry_key >= self._base + start, _entry_t.c.entry_key < self._base + stop)
                    .order_by(_entry_t.c.entry_key)
                ).all()
            indices = [r.entry_key - self._base for r in rows]
            if indices != list(range(start, stop)):
                missing = next(i for i, found in zip(range(start, stop), [*indices, None], strict=False) if i != found)
                if not problem:
                    rewritten = range(missing, missing + 1)
                    problem = f"log {self.name!r} is missing entries in [{start}, {stop}) (entry {missing} first)"
                break  # no root of the data beyond a missing entry
            leaves = [leaf_hash(bytes(r.data)) for r in rows]
            pos = 0
            while pos < len(rows):
                # one extend per stretch between requested sizes, so each of their roots is taken on the way
                end = min(len(rows), pending[0] - start) if pending else len(rows)
                completed = cr.extend(leaves[pos:end])
                if not problem:
                    stored = [bytes(r.subtree_hashes) for r in rows[pos:end]]
                    if completed != stored:
                        k = next(k for k, (c, s) in enumerate(zip(completed, stored, strict=True)) if c != s)
                        rewritten = _differing_leaves(start + pos + k, completed[k], stored[k])
                        problem = (
                            f"entry {rewritten[-1]} of {self.name!r}: stored subtree hashes differ from its data "
                            f"(the data of entries {rewritten[0]}..{rewritten[-1]} no longer hash to what is stored)"
                        )
                pos = end
                if pending and cr.size == pending[0]:
                    roots[pending.pop(0)] = cr.root()
        if not problem and cr.root() != head.root_hash:
            # every complete pair of leaves matched its stored level-1 hash: only an odd last leaf is unchecked
            rewritten = range(head.size - 1, head.size) if head.size % 2 else None
            problem = f"log {self.name!r}: entries hash to {cr.root().hex()}, head says {head.root_hash.hex()}"
        return Rehash(head, roots, rewritten, problem)

    # --- checkpoints ---------------------------------------------------------------------

    def sign_checkpoint(self, signer: note.Signer) -> str:
        """Sign and store a checkpoint of the current head (reusing one already signed at this size)."""
        head = self.head()
        existing = self.checkpoint_at(head.size)
        if existing is not None:
            return existing
        signed = checkpoint_mod.Checkpoint(self.origin, head.size, head.root_hash).sign(signer)
        try:
            with self.store._write() as conn:
                conn.execute(
                    insert(_cp_t).values(
                        log_id=self.id, size=head.size, root_hash=head.root_hash, note=signed, created_at=_now()
                    )
                )
        except IntegrityError:
            pass  # a concurrent caller stored the same size first; serve theirs
        return self.checkpoint_at(head.size) or signed

    def current_checkpoint(self, signer: note.Signer) -> str:
        """The signed checkpoint of the current head without writing anything: the stored one
        (with its cosignatures) if this size was stored, else one signed now. Ed25519 signatures
        are deterministic, so it is byte for byte the checkpoint that would be stored later."""
        head = self.head()
        stored = self.checkpoint_at(head.size)
        return stored or checkpoint_mod.Checkpoint(self.origin, head.size, head.root_hash).sign(signer)

    def checkpoint_at(self, size: int) -> str | None:
        """The stored signed checkpoint of ``size`` with its cosignatures, if there is one."""
        with self.store.engine.connect() as conn:
            signed = conn.execute(
                select(_cp_t.c.note).where(_cp_t.c.log_id == self.id, _cp_t.c.size == size)
            ).scalar_one_or_none()
            if signed is None:
                return None
            lines = (
                conn.execute(
                    select(_cosig_t.c.line)
                    .where(_cosig_t.c.log_id == self.id, _cosig_t.c.size == size)
                    .order_by(_cosig_t.c.witness)
                )
                .scalars()
                .all()
            )
        return signed + "".join(lines)

    def latest_checkpoint(self) -> str | None:
        """The newest stored checkpoint with its cosignatures, or None before the first one."""
        with self.store.engine.connect() as conn:
            size = conn.execute(
                select(_cp_t.c.size).where(_cp_t.c.log_id == self.id).order_by(_cp_t.c.size.desc()).limit(1)
            ).scalar_one_or_none()
        return None if size is None else self.checkpoint_at(size)

    def add_cosignature(self, size: int, witness: str, line: str) -> None:
        """Store a witness's cosignature line on the checkpoint of ``size`` (once per witness)."""
        if not line.startswith(note.SIG_PREFIX) or not line.endswith("\n") or line.count("\n") != 1:
            raise StorageError("a cosignature is one note signature line")
        try:
            with self.store._write() as conn:
                conn.execute(
                    insert(_cosig_t).values(log_id=self.id, size=size, witness=witness, line=line, created_at=_now())
                )
        except IntegrityError:
            pass  # already stored: cosignatures are idempotent

    def last_cosigned_size(self, witness: str, at_most: int) -> int:
        """The largest checkpoint size (<= ``at_most``) that ``witness`` cosigned, or 0."""
        with self.store.engine.connect() as conn:
            size = conn.execute(
                select(func.max(_cosig_t.c.size)).where(
                    _cosig_t.c.log_id == self.id, _cosig_t.c.witness == witness, _cosig_t.c.size <= at_most
                )
            ).scalar_one_or_none()
        return size or 0


class SqlWitnessState:
    """:class:`ledger.witness.WitnessState` kept in the ``ledger_witnessed`` table."""

    def __init__(self, store: LedgerStore) -> None:
        self.store = store

    def latest(self, origin: str) -> TreeHead | None:
        """See :class:`ledger.witness.WitnessState`."""
        with self.store.engine.connect() as conn:
            row = conn.execute(select(_wit_t.c.size, _wit_t.c.root_hash).where(_wit_t.c.origin == origin)).first()
        return None if row is None else TreeHead(row.size, bytes(row.root_hash))

    def compare_and_set(self, origin: str, expected: TreeHead | None, new: TreeHead) -> bool:
        """See :class:`ledger.witness.WitnessState`."""
        try:
            with self.store._write() as conn:
                if expected is None:
                    conn.execute(
                        insert(_wit_t).values(origin=origin, size=new.size, root_hash=new.root_hash, updated_at=_now())
                    )
                    return True
                moved = conn.execute(
                    update(_wit_t)
                    .where(
                        _wit_t.c.origin == origin,
                        _wit_t.c.size == expected.size,
                        _wit_t.c.root_hash == expected.root_hash,
                    )
                    .values(size=new.size, root_hash=new.root_hash, updated_at=_now())
                ).rowcount
                return moved == 1
        except IntegrityError:
            return False  # a concurrent first submission inserted the record
