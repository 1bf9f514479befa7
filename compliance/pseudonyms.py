"""Keyed member pseudonyms and crypto-shredding.

Each member gets a random 32-byte key; their pseudonym is ``HMAC-SHA256(key, node_id ‖ index)``
truncated to 128 bits, where ``index`` is the blind index of their reference (the key table never
holds the reference in clear, see :mod:`compliance.fieldcrypt`). Pseudonyms are what audit events
and ledger entries carry. Erasing a member deletes the key: the pseudonyms already in append-only
logs stay (the logs keep verifying) but nobody can link them to the member any more, not even
this node.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime

from sqlalchemy import Engine, LargeBinary, delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Column, Field, SQLModel

from compliance.fieldcrypt import FieldCipher
from compliance.read_once import forget, memoised


def _now() -> datetime:
    return datetime.now(UTC)


class MemberKeyRecord(SQLModel, table=True):
    """The pseudonym key of one member; deleting it is the erasure (crypto-shredding)."""

    __tablename__ = "compliance_member_key"
    ref_index: str = Field(primary_key=True, max_length=64)  # blind index of the member's reference
    key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=_now)


class MemberErasedError(LookupError):
    """The member's key was shredded: there is no pseudonym to give any more."""


def pseudonym_of(key: bytes, node_id: str, ref_index: str) -> str:
    """The pseudonym for the member whose reference has blind index ``ref_index``, under ``key`` (pure)."""
    return hmac.new(key, f"{node_id}\x00{ref_index}".encode(), hashlib.sha256).hexdigest()[:32]


def shred_all(engine: Engine) -> int:
    """Delete every member's key (a node's decommissioning); return how many there were.

    Needs no data key: a decommission resumed after the data key was already shredded still runs.
    """
    forget()
    with engine.begin() as conn:
        return conn.execute(delete(MemberKeyRecord.__table__)).rowcount


class Keyring:
    """Member keys of one node, in its database."""

    def __init__(self, engine: Engine, node_id: str, cipher: FieldCipher) -> None:
        self.engine = engine
        self.node_id = node_id
        self.cipher = cipher

    def create_schema(self) -> None:
        """Create the key table if missing."""
        SQLModel.metadata.create_all(self.engine, tables=[MemberKeyRecord.__table__])

    def pseudonym(self, member_ref: str, *, create: bool = True) -> str:
        """The member's pseudonym, creating their key on first use unless ``create`` is false."""
        if not create:
            return memoised(("pseudonym", member_ref), lambda: self._pseudonym(member_ref, create=False))
        return self._pseudonym(member_ref, create=True)

    def _pseudonym(self, member_ref: str, *, create: bool) -> str:
        t = MemberKeyRecord.__table__
        ref = self.cipher.index(member_ref)
        with self.engine.begin() as conn:
            key = conn.execute(select(t.c.key).where(t.c.ref_index == ref)).scalar_one_or_none()
            if key is None:
                if not create:
                    raise MemberErasedError(f"no pseudonym key for member {member_ref!r}")
                key = secrets.token_bytes(32)
                try:
                    conn.execute(insert(t).values(ref_index=ref, key=key, created_at=_now()))
                except IntegrityError:  # created concurrently: use theirs
                    key = conn.execute(select(t.c.key).where(t.c.ref_index == ref)).scalar_one()
        return pseudonym_of(bytes(key), self.node_id, ref)

    def pseudonyms(self, member_refs: list[str], *, create: bool = True, skip_missing: bool = False) -> dict[str, str]:
        """Pseudonyms of many members in one transaction, creating missing keys unless ``create`` is false
        (then a member with no key is :class:`MemberErasedError`, or left out with ``skip_missing``)."""
        t = MemberKeyRecord.__table__
        index = {m: self.cipher.index(m) for m in member_refs}
        refs = list(dict.fromkeys(index.values()))
        keys: dict[str, bytes] = {}
        with self.engine.begin() as conn:
            for start in range(0, len(refs), 500):
                chunk = refs[start : start + 500]
                rows = conn.execute(select(t.c.ref_index, t.c.key).where(t.c.ref_index.in_(chunk))).all()
                keys.update({r.ref_index: bytes(r.key) for r in rows})
            if not create and len(keys) < len(refs):
                if skip_missing:
                    return {
                        m: pseudonym_of(keys[index[m]], self.node_id, index[m]) for m in member_refs if index[m] in keys
                    }
                gone = next(m for m in member_refs if index[m] not in keys)
                raise MemberErasedError(f"no pseudonym key for member {gone!r}")
            missing = [
                {"ref_index": r, "key": secrets.token_bytes(32), "created_at": _now()} for r in refs if r not in keys
            ]
            if missing:
                conn.execute(insert(t), missing)
                keys.update({row["ref_index"]: row["key"] for row in missing})
        return {m: pseudonym_of(keys[index[m]], self.node_id, index[m]) for m in member_refs}

    def shred(self, member_ref: str) -> bool:
        """Delete the member's key; return whether there was one."""
        forget()
        t = MemberKeyRecord.__table__
        with self.engine.begin() as conn:
            return conn.execute(delete(t).where(t.c.ref_index == self.cipher.index(member_ref))).rowcount == 1

    def live(self) -> set[str]:
        """The pseudonyms of every member whose key still exists (everyone not erased)."""
        return set(self.by_index().values())

    def by_index(self) -> dict[str, str]:
        """Every live member's pseudonym, by the blind index of their reference."""
        t = MemberKeyRecord.__table__
        with self.engine.connect() as conn:
            return {r: pseudonym_of(bytes(k), self.node_id, r) for r, k in conn.execute(select(t.c.ref_index, t.c.key))}
