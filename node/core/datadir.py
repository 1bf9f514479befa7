"""A node's data directory: creating it (keys, verifier keys, config, database) and reading its parts.

A node is one directory: ``node.toml``, ``node.key`` (Ed25519, mode 0600), ``node.vkey``,
``witness.vkey``, ``data.key`` (the field-encryption key, mode 0600), ``entrustment.json`` when another
party hosts the node (:mod:`compliance.entrustment`), ``decommissioned.note`` once it was
decommissioned (:mod:`compliance.attestation`) and, unless
``database_url`` points elsewhere, ``node.db`` (mode 0600, as are its ``-wal`` and ``-shm``: it holds
members' pseudonym keys and staff-key hashes). ``init`` creates the directory 0700.
:class:`node.runtime.Node` opens one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from compliance.attestation import ATTESTATION_FILE
from compliance.fieldcrypt import create_key_file
from ledger import note
from ledger.storage import LedgerStore, create_engine
from node.core.schema import upgrade
from node.core.settings import (
    CONFIG_FILE,
    DATA_KEY_FILE,
    DEFAULT_LOGS,
    KEY_FILE,
    VKEY_FILE,
    WITNESS_VKEY_FILE,
    NodeSettings,
    Peer,
    load_settings,
    write_config,
)

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
DB_FILES = ("node.db", "node.db-wal", "node.db-shm", "node.db-journal")  # SQLite's file and its companions


class NodeExistsError(FileExistsError):
    """``init`` found an existing key and refuses to overwrite it."""


class NodeDecommissionedError(RuntimeError):
    """The node was decommissioned (``alliance-node decommission``): it opens for nothing any more."""

    reason = "decommissioned"


def decommissioned(data_dir: Path) -> Path | None:
    """The deletion attestation of the node in ``data_dir`` if it was decommissioned, else None."""
    path = data_dir / ATTESTATION_FILE
    return path if path.exists() else None


def refuse_if_decommissioned(data_dir: Path) -> None:
    """Raise :class:`NodeDecommissionedError`, naming the attestation, if the node was decommissioned."""
    if (attestation := decommissioned(data_dir)) is not None:
        raise NodeDecommissionedError(
            f"this node was decommissioned: its data key and member keys were shredded and it serves nothing"
            f" more; the signed deletion attestation is {attestation}"
            " (check it with `alliance-node decommission verify`)"
        )


@dataclass(frozen=True)
class LoosePermission:
    """A node's directory or secret file that its group or other users may access, and its mode."""

    path: Path
    mode: int  # the permission bits, e.g. 0o644


def loose_permissions(data_dir: Path, key_file: str = KEY_FILE) -> list[LoosePermission]:
    """The data directory and the secret files in it (database, keys, config) that group or others may access.

    The directory first, then the files in a fixed order; missing files are skipped (the database may
    live on PostgreSQL). Verifier keys and the registry are public and not checked.
    """
    found = []
    for path in (data_dir, *(data_dir / name for name in (*DB_FILES, key_file, DATA_KEY_FILE, CONFIG_FILE))):
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            continue
        if mode & 0o077:
            found.append(LoosePermission(path, mode))
    return found


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def open_store(settings: NodeSettings) -> LedgerStore:
    """The ledger store on the node's database (nothing is created yet)."""
    engine = create_engine(
        settings.db_url,
        sqlite_synchronous=settings.sqlite_synchronous,
        sqlite_busy_timeout=settings.sqlite_busy_timeout,
        sqlite_file_mode=PRIVATE_FILE_MODE,  # a new SQLite database: 0600, and SQLite copies it to -wal, -shm
    )
    return LedgerStore(engine)


def create_schemas(store: LedgerStore) -> None:
    """Create the ledger's tables and migrate the node's to the newest revision (safe from several processes)."""
    store.create_schema()
    upgrade(store.engine)


def ensure_default_logs(store: LedgerStore, settings: NodeSettings) -> None:
    """Create the logs every node keeps (``audit``, ``exchange``) if they are missing."""
    for name in DEFAULT_LOGS:
        store.ensure_log(name, settings.origin(name))


def load_signer(settings: NodeSettings) -> note.Signer:
    """The node's Ed25519 signer, read from its key file (a clear error if it is missing or not its own)."""
    path = settings.key_path
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `alliance-node init`")
    signer = note.Signer.from_skey(path.read_text())
    if signer.name != settings.node_id:
        raise ValueError(f"key {path} belongs to {signer.name!r}, not node {settings.node_id!r}")
    return signer


def init_node(data_dir: Path, node_id: str, **fields: object) -> NodeSettings:
    """Create a node in ``data_dir``: Ed25519 key, ``node.vkey``, ``witness.vkey``, config, database.

    Refuses (``NodeExistsError``) if a key and a ``node.toml`` are already there: a node's key is its
    identity. A key without ``node.toml`` (the config was lost) is kept, and a fresh ``node.toml`` is
    written for it, if the key is ``node_id``'s (``ValueError`` otherwise). A new
    directory is created 0700; an existing one keeps its mode (see :func:`loose_permissions`).
    """
    data_dir.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)  # parents get the usual mode
    settings = NodeSettings(data_dir=data_dir, node_id=node_id, **fields)  # type: ignore[arg-type]
    if settings.key_path.exists():
        if (data_dir / CONFIG_FILE).exists():
            raise NodeExistsError(f"{settings.key_path} already exists: refusing to overwrite this node's key")
        # node.toml was lost: write a fresh one for the key that is there, if it is this node's, and only
        # over its database: the same key signing new, empty logs would fork the ones peers cosigned
        signer = load_signer(settings)
        if settings.database_url is None and not (data_dir / "node.db").exists():
            raise NodeExistsError(
                f"{settings.key_path} exists but neither node.toml nor node.db does: restore them from a backup;"
                " if the database is elsewhere, give its --database-url (a new database under this key would"
                " fork the logs its peers cosigned)"
            )
    else:
        signer = note.Signer.generate(node_id)
        _write_private(settings.key_path, signer.to_skey() + "\n")
        create_key_file(data_dir / DATA_KEY_FILE)  # only for a new node: a new key cannot read old data
    (data_dir / VKEY_FILE).write_text(signer.verifier().to_vkey() + "\n")
    (data_dir / WITNESS_VKEY_FILE).write_text(signer.verifier(note.ALG_COSIGNATURE_V1).to_vkey() + "\n")
    write_config(settings)
    store = open_store(settings)
    try:
        create_schemas(store)
        ensure_default_logs(store, settings)
    finally:
        store.close()
    return settings


def add_peer(data_dir: Path, peer: Peer) -> NodeSettings:
    """Trust ``peer``'s key (replacing an older entry with the same node id) and save the config."""
    settings = load_settings(data_dir)
    note.Verifier.from_vkey(peer.vkey)  # refuse a malformed key before saving it
    settings.peers = [p for p in settings.peers if p.node_id != peer.node_id] + [peer]
    write_config(settings)
    return settings
