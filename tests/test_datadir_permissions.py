"""A node's data directory is its owner's alone: the directory 0700, the database and its WAL files 0600,
and a directory or file opened up to others is found (``init`` and ``serve`` warn about it)."""

from __future__ import annotations

from pathlib import Path

from node.core.datadir import init_node, loose_permissions
from node.core.settings import CONFIG_FILE, DATA_KEY_FILE, KEY_FILE
from node.runtime import Node


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_init_creates_the_data_directory_private_to_its_owner(tmp_path: Path) -> None:
    d = tmp_path / "node"
    init_node(d, "a.example")
    assert _mode(d) == 0o700


def test_the_database_is_created_private_to_its_owner(tmp_path: Path) -> None:
    d = tmp_path / "node"
    init_node(d, "a.example")
    assert _mode(d / "node.db") == 0o600


def test_the_databases_wal_and_shared_memory_files_are_private_too(tmp_path: Path) -> None:
    d = tmp_path / "node"
    init_node(d, "a.example")
    node = Node.open(d)
    try:
        node.store.log("audit").append([b"a write, so the WAL and its index exist"])
        assert _mode(d / "node.db-wal") == 0o600
        assert _mode(d / "node.db-shm") == 0o600
    finally:
        node.dispose()


def test_a_new_node_has_no_loose_permissions(tmp_path: Path) -> None:
    d = tmp_path / "node"
    init_node(d, "a.example")
    assert loose_permissions(d) == []


def test_a_database_file_others_can_read_is_found_with_its_mode(tmp_path: Path) -> None:
    d = tmp_path / "node"
    init_node(d, "a.example")
    (d / "node.db").chmod(0o644)
    assert [(p.path, p.mode) for p in loose_permissions(d)] == [(d / "node.db", 0o644)]


def test_a_data_directory_others_can_enter_is_found(tmp_path: Path) -> None:
    d = tmp_path / "node"
    init_node(d, "a.example")
    d.chmod(0o755)
    assert [(p.path, p.mode) for p in loose_permissions(d)] == [(d, 0o755)]


def test_every_secret_file_is_checked(tmp_path: Path) -> None:
    d = tmp_path / "node"
    init_node(d, "a.example")
    secrets = [d / KEY_FILE, d / DATA_KEY_FILE, d / CONFIG_FILE, d / "node.db"]
    for path in secrets:
        path.chmod(0o640)
    assert sorted(p.path for p in loose_permissions(d)) == sorted(secrets)


def test_public_files_and_missing_ones_are_not_findings(tmp_path: Path) -> None:
    d = tmp_path / "node"
    init_node(d, "a.example")
    (d / "node.vkey").chmod(0o644)  # a verifier key is meant to be shared
    (d / "node.db").unlink()  # e.g. the database lives on PostgreSQL
    assert loose_permissions(d) == []
