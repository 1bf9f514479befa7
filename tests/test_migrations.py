"""Alembic migrations: they build exactly the models' schema, on SQLite and PostgreSQL, from any number of processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from ledger.storage import create_engine
from node.core.schema import current, head, include_object, upgrade
from node.tables import metadata


def _node_tables(engine: Engine) -> set[str]:
    return {t for t in inspect(engine).get_table_names() if not t.startswith("ledger_")}


def _differences(engine: Engine) -> list:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_object": include_object, "compare_type": True})
        return compare_metadata(ctx, metadata())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'node.db'}")
    else:
        engine = create_engine(request.getfixturevalue("pg_database"))
        with engine.begin() as conn:
            for table in _node_tables(engine):
                conn.execute(text(f'DROP TABLE IF EXISTS "{table}" CASCADE'))
    yield engine
    engine.dispose()


def test_the_migrations_build_exactly_the_models_schema(empty_engine: Engine) -> None:
    upgrade(empty_engine)
    assert _differences(empty_engine) == []
    assert current(empty_engine) == head()


def test_upgrading_twice_changes_nothing(empty_engine: Engine) -> None:
    upgrade(empty_engine)
    before = _node_tables(empty_engine)
    upgrade(empty_engine)
    assert _node_tables(empty_engine) == before
    assert "alembic_version" in before


def test_processes_migrating_one_database_at_once_all_succeed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'node.db'}"
    code = (
        "from ledger.storage import create_engine; from node.core.schema import upgrade; "
        f"upgrade(create_engine({url!r}))"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE) for _ in range(3)]
    errors = [p.communicate(timeout=60)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    assert current(create_engine(url)) == head()


@pytest.mark.postgres
def test_a_node_keeps_its_members_and_consents_in_postgresql(tmp_path: Path, pg_database: str) -> None:
    from compliance_fixtures import notice_data

    from compliance.consent import ConsentAction
    from compliance.notices import parse_notice
    from node.core.datadir import init_node
    from node.runtime import Node

    engine = create_engine(pg_database)
    with engine.begin() as conn:
        for table in _node_tables(engine):
            conn.execute(text(f'DROP TABLE IF EXISTS "{table}" CASCADE'))
    engine.dispose()
    init_node(tmp_path / "n", "n.example", database_url=pg_database)
    node = Node.open(tmp_path / "n")
    try:
        node.consent.publish_notice(parse_notice(notice_data()))
        node.consent.register_member("M-1")
        node.consent.change("M-1", ["marketing"], ConsentAction.GRANT)
        assert node.consent.check("M-1", "marketing").allowed
        assert node.consent.store.member("M-1").member_ref == "M-1"  # type: ignore[union-attr]
    finally:
        node.dispose()
