"""Shared fixtures: ledger stores on SQLite and, when one answers, on PostgreSQL; nodes in a temporary directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import SQLModel

from ledger.storage import TABLES, LedgerStore, create_engine
from node.core.datadir import init_node
from node.runtime import Node

PG_ENV = "ALLIANCE_TEST_PG_URL"


def pg_url() -> str | None:
    """The PostgreSQL URL for tests, or None (with the reason printed by the skip)."""
    return os.environ.get(PG_ENV)


def _pg_skip_reason() -> str | None:
    url = pg_url()
    if not url:
        return f"PostgreSQL tests skipped: {PG_ENV} is not set (.ci/run sets it when 127.0.0.1:5432 answers)"
    try:
        engine = create_engine(url)
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:  # any connection failure means: skip, saying why
        return f"PostgreSQL tests skipped: {url} does not answer ({type(exc).__name__})"
    return None


def fresh_pg_store() -> LedgerStore:
    """A store on the test PostgreSQL database with the ledger tables recreated empty."""
    engine = create_engine(pg_url() or "")
    SQLModel.metadata.drop_all(engine, tables=TABLES)
    store = LedgerStore(engine)
    store.create_schema()
    return store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL: a new SQLite file, or the (emptied) PostgreSQL test database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    yield request.getfixturevalue("pg_database")


@pytest.fixture
def store(db_url: str) -> Iterator[LedgerStore]:
    """An empty ledger store with its schema."""
    s = LedgerStore(create_engine(db_url))
    s.create_schema()
    yield s
    s.close()


@pytest.fixture
def pg_database() -> str:
    """The URL of the emptied PostgreSQL test database; skips, saying why, when there is none."""
    reason = _pg_skip_reason()
    if reason:
        pytest.skip(reason)
    fresh_pg_store().close()
    return pg_url() or ""


class NodeFactory:
    """Initialises and opens nodes under one directory, and disposes of every one it opened."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.opened: list[Node] = []

    def __call__(self, node_id: str = "n.example", **settings: object) -> Node:
        """A new node ``node_id`` in ``base/<node_id>``; ``settings`` go into its config (peers, regions …)."""
        data_dir = self.base / node_id
        init_node(data_dir, node_id, **settings)
        node = Node.open(data_dir)
        self.opened.append(node)
        return node

    def dispose(self) -> None:
        """Close every node opened here (disposing twice is harmless)."""
        for node in self.opened:
            node.dispose()


@pytest.fixture
def make_node(tmp_path: Path) -> Iterator[NodeFactory]:
    """Makes nodes in this test's temporary directory: ``make_node("a.example", allowed_regions=[...])``."""
    factory = NodeFactory(tmp_path)
    yield factory
    factory.dispose()


@pytest.fixture
def node(make_node: NodeFactory) -> Node:
    """A new, empty node ``n.example`` (no notice, no members), disposed of after the test."""
    return make_node()
