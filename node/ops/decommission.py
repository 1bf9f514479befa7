"""Decommissioning a node: deleting its members' personal information for good, and attesting it.

What an entrusted host does when its contract ends (PIPL Art. 21; :mod:`compliance.entrustment`),
and what any brand does with a node it retires. Irreversible, and run with ``serve`` stopped:

1. the database must be free (SQLite's write-ahead log can be emptied now: no other process reads it);
2. every member's pseudonym key is deleted: no pseudonym can be recomputed from a reference, and the
   pseudonyms in the append-only logs link to nobody any more (crypto-shredding, as an erasure does
   for one member);
3. ``data.key`` is overwritten with random bytes and deleted: no sealed value (every ``*_sealed``
   column: references, birth dates, guardians, phones, the references kept with links) opens again;
4. the decommission is audited (``pi.delete``, the entrustment contract as recipient), each log's
   head is signed as a checkpoint, and the write-ahead log is emptied, so the shredded keys are in
   neither ``node.db`` (SQLite ``secure_delete``) nor ``node.db-wal``;
5. the deletion attestation (:mod:`compliance.attestation`), signed with the node's key, is written
   to ``decommissioned.note``; from then on the node refuses to open (:mod:`node.core.datadir`).

A decommission that stopped half-way (a crash) is run again: it finds the keys already gone and says
so (``data-key absent``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, func, select

from compliance.attestation import ATTESTATION_FILE, DeletionAttestation, LogHead
from compliance.entrustment import load_entrustment, summary
from compliance.fieldcrypt import shred_key_file
from compliance.pseudonyms import shred_all
from node.core.datadir import refuse_if_decommissioned
from node.core.settings import DATA_KEY_FILE, load_settings
from node.runtime import Node
from node.tables import metadata

SEALED_SUFFIX = "_sealed"  # every column holding a value sealed with the data key is named so
FREE_WAIT = 2.0  # seconds to wait for a reader of the write-ahead log before refusing


class DecommissionRefusedError(RuntimeError):
    """Decommissioning cannot start now; nothing was changed."""

    reason = "decommission_refused"


@dataclass(frozen=True)
class Decommissioned:
    """A finished decommission: the attestation, as signed, and where it was written."""

    attestation: DeletionAttestation
    signed: str
    path: Path


def sealed_values(engine: Engine) -> int:
    """How many values in the database are sealed with the data key (non-null ``*_sealed`` columns)."""
    counted = 0
    with engine.connect() as conn:
        for table in metadata().sorted_tables:
            for column in table.columns:
                if column.name.endswith(SEALED_SUFFIX):
                    counted += conn.execute(select(func.count(column))).scalar_one()
    return counted


def open_for_decommission(data_dir: Path) -> Node:
    """The node in ``data_dir``, opened without reading ``data.key`` (a decommission resumed after a crash
    no longer has it); :class:`node.core.datadir.NodeDecommissionedError` if it was decommissioned already."""
    refuse_if_decommissioned(data_dir)
    return Node(load_settings(data_dir))


def decommission(node: Node, now: datetime | None = None) -> Decommissioned:
    """Shred the node's data key and every member key, audit it and write the signed deletion attestation.

    The audit event's actor is whoever :data:`node.core.auth.current_caller` names (the CLI's ``--as``).
    Raises :class:`DecommissionRefusedError` before changing anything if another process holds the database.
    """
    refuse_if_decommissioned(node.settings.data_dir)
    now = now or datetime.now(UTC)
    data_dir, engine = node.settings.data_dir, node.store.engine
    node.signer  # noqa: B018  the attestation needs the key: fail before destroying anything if it is unreadable
    if not node.store.checkpoint_wal(wait=FREE_WAIT):
        raise DecommissionRefusedError(
            "another process is using the database (is `serve` running?): stop it, then decommission; nothing was"
            " changed"
        )
    node.audit.recover_outbox()  # events staged before a crash belong in the log whose head is attested
    terms = load_entrustment(data_dir)
    sealed = sealed_values(engine)
    member_keys = shred_all(engine)
    data_key = "shredded" if shred_key_file(data_dir / DATA_KEY_FILE) else "absent"
    node.audit(
        "pi.delete",
        record_count=member_keys,
        recipient=terms.recipient() if terms else None,
        pi_categories=list(terms.pi_categories) if terms else [],
        details={"scope": "node", "data_key": data_key, "member_keys": member_keys, "sealed_values": sealed}
        | ({f"contract.{k}": v for k, v in summary(terms).items()} if terms else {}),
    )
    heads = []
    for name in node.store.log_names():
        log = node.store.log(name)
        log.sign_checkpoint(node.signer)  # stored, so the attested head can be served and cosigned later
        head = log.head()
        heads.append(LogHead(log.origin, head.size, head.root_hash))
    emptied = node.store.checkpoint_wal(wait=FREE_WAIT)
    wal = "server" if engine.dialect.name != "sqlite" else "emptied" if emptied else "in-use"
    attestation = DeletionAttestation(
        node_id=node.settings.node_id,
        at=now,
        contract_id=terms.contract_id if terms else None,
        data_key=data_key,
        member_keys=member_keys,
        sealed_values=sealed,
        wal=wal,
        logs=tuple(heads),
    )
    signed = attestation.sign(node.signer)
    path = data_dir / ATTESTATION_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)  # not a secret: the brand gets a copy
    with os.fdopen(fd, "w") as f:
        f.write(signed)
        f.flush()
        os.fsync(f.fileno())
    return Decommissioned(attestation, signed, path)
