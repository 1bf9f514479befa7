"""Field-level encryption at rest (PIPL-SEC-01): identifiers and birth dates never sit in clear in the database."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from compliance.fieldcrypt import FieldCipher, FieldCryptError, load_key_file
from node.core.datadir import init_node
from node.core.settings import DATA_KEY_FILE
from node.runtime import Node

CIPHER = FieldCipher.generate()


def test_a_sealed_value_opens_to_itself() -> None:
    assert CIPHER.open(CIPHER.seal("13800138000", "member.ref"), "member.ref") == "13800138000"


def test_sealing_twice_gives_different_bytes_but_one_blind_index() -> None:
    assert CIPHER.seal("M-1", "member.ref") != CIPHER.seal("M-1", "member.ref")
    assert CIPHER.index("M-1") == CIPHER.index("M-1") != CIPHER.index("M-2")


def test_a_value_moved_to_another_column_does_not_open() -> None:
    with pytest.raises(FieldCryptError):
        CIPHER.open(CIPHER.seal("G-7", "member.guardian"), "member.ref")


def test_another_nodes_key_opens_nothing() -> None:
    with pytest.raises(FieldCryptError, match="data key"):
        FieldCipher.generate().open(CIPHER.seal("M-1", "member.ref"), "member.ref")


@given(st.text(max_size=50), st.data())
def test_any_altered_byte_is_detected(value: str, data: st.DataObject) -> None:
    blob = bytearray(CIPHER.seal(value, "member.ref"))
    i = data.draw(st.integers(min_value=0, max_value=len(blob) - 1))
    blob[i] ^= data.draw(st.integers(min_value=1, max_value=255))
    with pytest.raises(FieldCryptError):
        CIPHER.open(bytes(blob), "member.ref")


def test_the_database_file_holds_no_identifier_birth_date_or_guardian_in_clear(tmp_path: Path) -> None:
    init_node(tmp_path / "n", "n.example")
    node = Node.open(tmp_path / "n")
    node.consent.register_member("PARENT-13800138000")
    node.consent.register_member("CHILD-13900139000", date(2019, 4, 5), "PARENT-13800138000")
    node.consent.register_members([(f"BULK-1370000{i:04d}", date(1980, 1, 2), None) for i in range(50)])
    assert node.consent.store.member("CHILD-13900139000").guardian_ref == "PARENT-13800138000"  # type: ignore[union-attr]
    node.dispose()
    raw = b"".join(p.read_bytes() for p in (tmp_path / "n").glob("node.db*"))
    for needle in (b"13800138000", b"13900139000", b"1370000", b"2019-04-05", b"1980-01-02", b"PARENT", b"CHILD"):
        assert needle not in raw


def test_a_node_without_its_data_key_says_what_is_missing(tmp_path: Path) -> None:
    init_node(tmp_path / "n", "n.example")
    (tmp_path / "n" / DATA_KEY_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="data key"):
        Node.open(tmp_path / "n")


def test_the_data_key_file_is_private_to_the_node_user(tmp_path: Path) -> None:
    init_node(tmp_path / "n", "n.example")
    path = tmp_path / "n" / DATA_KEY_FILE
    assert path.stat().st_mode & 0o077 == 0
    assert isinstance(load_key_file(path), FieldCipher)
