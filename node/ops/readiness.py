"""Readiness: whether this node can serve requests now, as opposed to merely running (``/health``).

``/ready`` is public (load balancers probe it): its reasons name the check, never a path, a host or
a driver's message; those go to the node's log.

Four checks, each cheap enough for a probe every few seconds: the database answers a fresh
connection, its schema is at the revision this code expects, the signing key can be read, and the
node was not decommissioned since it started (``alliance-node decommission`` is run with ``serve``
stopped; a server left running is taken out of its balancer by this check). A
pooled connection would keep answering after the database file became unreadable, so SQLite's file
is opened anew; through SQLite itself, whose connections in one process share their file locks
(a plain ``open()`` of the file would not be safe, see :mod:`ledger.storage`).
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from node.core import schema
from node.core.datadir import decommissioned, load_signer
from node.runtime import Node

log = logging.getLogger(__name__)


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
                log.warning("not ready: the database file %s is missing", path)
                return Check("database", False, "the database file is missing")
            conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=2)
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            finally:
                conn.close()
        else:
            with node.store.engine.connect() as c:
                c.execute(text("SELECT 1"))
    except Exception as exc:
        log.warning("not ready: the database does not answer: %s", getattr(exc, "orig", None) or exc)
        return Check("database", False, "the database does not answer (the node's log says why)")
    return Check("database", True)


def check_migrations(node: Node) -> Check:
    """The schema is at the newest revision this code knows."""
    try:
        at, newest = schema.current(node.store.engine), schema.head()
    except Exception as exc:
        log.warning("not ready: the schema revision cannot be read: %s", getattr(exc, "orig", None) or exc)
        return Check("migrations", False, "the schema revision cannot be read")
    if at != newest:
        return Check("migrations", False, f"the schema is at {at}, this code needs {newest}: restart to migrate")
    return Check("migrations", True)


def check_signing_key(node: Node) -> Check:
    """The node's signing key can be read and is its own."""
    try:
        load_signer(node.settings)
    except OSError as exc:
        log.warning("not ready: the signing key cannot be read: %s", exc)
        return Check("signing_key", False, "the signing key cannot be read")
    except Exception:  # never the parser's message: it could quote the key file
        log.warning("not ready: %s is not this node's signing key", node.settings.key_path)
        return Check("signing_key", False, "the signing key file is not this node's key")
    return Check("signing_key", True)


def check_not_decommissioned(node: Node) -> Check:
    """The node has not been decommissioned (its data key and member keys would be gone)."""
    if decommissioned(node.settings.data_dir) is not None:
        return Check("decommissioned", False, "this node was decommissioned: it serves nothing more")
    return Check("decommissioned", True)


def readiness(node: Node) -> list[Check]:
    """Every check, in order; the node is ready when all pass."""
    database = check_database(node)
    # the schema is read through the database: its check says nothing new when the database is down
    migrations = check_migrations(node) if database.ok else Check("migrations", False, "the database does not answer")
    return [database, migrations, check_signing_key(node), check_not_decommissioned(node)]
