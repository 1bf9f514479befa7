"""Alembic environment for the node's own tables (the ledger creates and guards its own).

Run through :func:`node.core.schema.upgrade`, which hands over an open connection inside a locked
transaction; there is no alembic.ini and no offline mode. Only writing a revision
(:func:`node.core.schema.write_revision`) hands over the models' metadata to compare with.
"""

from __future__ import annotations

from alembic import context

from node.core.schema import include_object

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=context.config.attributes.get("target_metadata"),
    include_object=include_object,
    render_as_batch=True,  # SQLite alters tables by copying them
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
