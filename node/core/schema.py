"""The node's database schema: Alembic migrations for every table outside the ledger.

:func:`upgrade` brings a database to the newest revision and is safe to run from several
processes at once: one transaction holds the write lock (SQLite ``BEGIN IMMEDIATE``, PostgreSQL
an advisory lock) while the version is read and the migrations run. The ledger's tables are not
here: ``ledger`` is a standalone library and creates its own, with its append-only triggers.

A developer adding a column changes the model, then runs ``python -m node.schema revision "what"``
against a scratch database to write the next migration, and reviews it.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
from importlib.resources import files
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, MetaData
from sqlmodel import SQLModel

_PG_LOCK = "SELECT pg_advisory_xact_lock(7261636532)"  # one migrator per database


def target_metadata() -> MetaData:
    """The node's tables (every model module imported), without the ledger's."""
    # importing a model module registers its tables on SQLModel.metadata
    for module in (
        "compliance.audit_index",
        "compliance.egress",
        "compliance.outbox",
        "compliance.pia_service",
        "compliance.prompts",
        "compliance.pseudonyms",
        "compliance.retention",
        "compliance.store",
        "node.core.auth",
        "node.exchange.store",
        "node.learning.store",
        "node.exchange.links",
        "node.wallet.store",
    ):
        importlib.import_module(module)
    return SQLModel.metadata


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Only the node's tables: the ledger manages ``ledger_*`` itself."""
    table = obj if type_ == "table" else getattr(obj, "table", None)
    table_name = name if type_ == "table" else getattr(table, "name", "")
    return not (table_name or "").startswith("ledger_")


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(files("node.core").joinpath("migrations")))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database behind ``engine`` to ``revision`` (default: the newest)."""
    cfg = _config()
    with engine.connect() as conn:
        conn.execution_options(ledger_write=True)  # ledger.storage's engine: BEGIN IMMEDIATE on SQLite
        with conn.begin():
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql(_PG_LOCK)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)


def current(engine: Engine) -> str | None:
    """The revision the database is at (None before the first migration)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head() -> str:
    """The newest revision this code knows."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config()).get_current_head()  # type: ignore[return-value]


def _revision(message: str) -> None:
    """Write the next migration by comparing the models with a scratch database at head."""
    from ledger.storage import create_engine

    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{tmp}/scratch.db")
        upgrade(engine)
        cfg = _config()
        with engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.revision(cfg, message=message, autogenerate=True)
        engine.dispose()


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "revision":
        sys.exit('usage: python -m node.schema revision "what changed"')
    _revision(sys.argv[2])
