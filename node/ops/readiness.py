"""Readiness: whether this node can serve requests now, as opposed to merely running (``/health``).

Three checks, each cheap enough for a probe every few seconds: the database answers a fresh
connection, its schema is at the revision this code expects, and the signing key can be read. A
pooled connection would keep answering after the database file became unreadable, so SQLite's file
is opened anew; through SQLite itself, whose connections in one process share their file locks
(a plain ``open()`` of the file would not be safe, see :mod:`ledger.storage`).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from node.core import schema
from node.core.datadir import load_signer
from node.runtime import Node


@dataclass(frozen=True)
class Check:
    """One readiness check's outcome."""

    name: str
    ok: bool
    reason: str = ""


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (``None`` for other databases or an in-memory one)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def check_database(node: Node) -> Check:
    """The database answers a query on a connection opened now."""
    try:
        path = sqlite_file(node.settings.db_url)
        if path is not None:
            if not path.is_file():
                return Check("database", False, f"the database file {path} is missing")
            conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=2)
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            finally:
                conn.close()
        else:
            with node.store.engine.connect() as c:
                c.execute(text("SELECT 1"))
    except Exception as exc:
        return Check("database", False, f"the database does not answer: {exc}")
    return Check("database", True)


def check_migrations(node: Node) -> Check:
    """The schema is at the newest revision this code knows."""
    try:
        at, newest = schema.current(node.store.engine), schema.head()
    except Exception as exc:
        return Check("migrations", False, f"the schema revision cannot be read: {exc}")
    if at != newest:
        return Check("migrations", False, f"the schema is at {at}, this code needs {newest}: restart to migrate")
    return Check("migrations", True)


def check_signing_key(node: Node) -> Check:
    """The node's signing key can be read and is its own."""
    try:
        load_signer(node.settings)
    except OSError as exc:
        return Check("signing_key", False, f"the signing key cannot be read: {exc}")
    except Exception:  # never the parser's message: it could quote the key file
        return Check("signing_key", False, f"{node.settings.key_path} is not this node's signing key")
    return Check("signing_key", True)


def readiness(node: Node) -> list[Check]:
    """Every check, in order; the node is ready when all pass."""
    database = check_database(node)
    # the schema is read through the database: its check says nothing new when the database is down
    migrations = check_migrations(node) if database.ok else Check("migrations", False, "the database does not answer")
    return [database, migrations, check_signing_key(node)]
