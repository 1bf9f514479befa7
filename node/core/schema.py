"""The node's database schema: Alembic migrations for every table outside the ledger.

:func:`upgrade` brings a database to the newest revision and is safe to run from several
processes at once: one transaction holds the write lock (SQLite ``BEGIN IMMEDIATE``, PostgreSQL
an advisory lock) while the version is read and the migrations run. The ledger's tables are not
here: ``ledger`` is a standalone library and creates its own, with its append-only triggers.

A developer adding a column changes the model, then runs ``python -m node.tables revision "what"``
(:mod:`node.tables` knows every model; this module knows none) to write the next migration, and
reviews it.
"""

from __future__ import annotations

import tempfile
from importlib.resources import files
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, MetaData

_PG_LOCK = "SELECT pg_advisory_xact_lock(7261636532)"  # one migrator per database


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


def write_revision(message: str, metadata: MetaData) -> None:
    """Write the next migration by comparing ``metadata`` (every model's table) with a scratch database at head."""
    from ledger.storage import create_engine  # a developer's command: the node itself never needs it here

    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{tmp}/scratch.db")
        upgrade(engine)
        cfg = _config()
        with engine.connect() as conn:
            cfg.attributes["connection"] = conn
            cfg.attributes["target_metadata"] = metadata
            command.revision(cfg, message=message, autogenerate=True)
        engine.dispose()
