"""Every table of the node's own (not the ledger's): what Alembic compares the migrations with.

Importing a model module registers its tables on ``SQLModel.metadata``; this module imports each
of them, so it sits above the wings whose tables it gathers. ``tests/test_migrations.py`` checks
that the migrations build exactly these tables. After changing a model, write the next migration
with ``python -m node.tables revision "what changed"`` and review it.
"""

from __future__ import annotations

import sys

from sqlalchemy import MetaData
from sqlmodel import SQLModel

import compliance.audit_index
import compliance.decisions
import compliance.egress
import compliance.joint_store
import compliance.outbox
import compliance.pia_service
import compliance.portability_store
import compliance.prompts
import compliance.pseudonyms
import compliance.retention
import compliance.reviews
import compliance.store
import node.core.auth
import node.core.periodic
import node.core.tokens
import node.exchange.links
import node.exchange.store
import node.learning.store
import node.learning.vertical_store
import node.peers.nonces
import node.wallet.purchases
import node.wallet.store
from node.core.schema import write_revision

#: The modules whose models are the node's tables (kept explicit: a new store is added here).
MODEL_MODULES = (
    compliance.audit_index,
    compliance.decisions,
    compliance.egress,
    compliance.joint_store,
    compliance.portability_store,
    compliance.outbox,
    compliance.pia_service,
    compliance.prompts,
    compliance.pseudonyms,
    compliance.retention,
    compliance.reviews,
    compliance.store,
    node.core.auth,
    node.core.periodic,
    node.core.tokens,
    node.exchange.links,
    node.exchange.store,
    node.learning.store,
    node.learning.vertical_store,
    node.peers.nonces,
    node.wallet.purchases,
    node.wallet.store,
)


def metadata() -> MetaData:
    """Every model's table (the ledger's too: :func:`node.core.schema.include_object` leaves those out)."""
    return SQLModel.metadata


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "revision":
        sys.exit('usage: python -m node.tables revision "what changed"')
    write_revision(sys.argv[2], metadata())
