"""Keyed member pseudonyms and crypto-shredding.

Each member gets a random 32-byte key; their pseudonym is ``HMAC-SHA256(key, node_id ‖ member)``
truncated to 128 bits. Pseudonyms are what audit events and ledger entries carry. Erasing a
member deletes the key: the pseudonyms already in append-only logs stay (the logs keep
verifying) but nobody can link them to the member any more, not even this node.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime

from sqlalchemy import Engine, LargeBinary, delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Column, Field, SQLModel


def _now() -> datetime:
    return datetime.now(UTC)


class MemberKeyRecord(SQLModel, table=True):
    """The pseudonym key of one member; deleting it is the erasure (crypto-shredding)."""

    __tablename__ = "compliance_member_key"
    member_ref: str = Field(primary_key=True, max_length=200)
    key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=_now)


class MemberErasedError(LookupError):
    """The member's key was shredded: there is no pseudonym to give any more."""


def pseudonym_of(key: bytes, node_id: str, member_ref: str) -> str:
    """The pseudonym for ``member_ref`` under ``key`` (pure)."""
    return hmac.new(key, f"{node_id}\x00{member_ref}".encode(), hashlib.sha256).hexdigest()[:32]


class Keyring:
    """Member keys of one node, in its database."""

    def __init__(self, engine: Engine, node_id: str) -> None:
        self.engine = engine
        self.node_id = node_id

    def create_schema(self) -> None:
        """Create the key table if missing."""
        SQLModel.metadata.create_all(self.engine, tables=[MemberKeyRecord.__table__])

    def pseudonym(self, member_ref: str, *, create: bool = True) -> str:
        """The member's pseudonym, creating their key on first use unless ``create`` is false."""
        t = MemberKeyRecord.__table__
        with self.engine.begin() as conn:
            key = conn.execute(select(t.c.key).where(t.c.member_ref == member_ref)).scalar_one_or_none()
            if key is None:
                if not create:
                    raise MemberErasedError(f"no pseudonym key for member {member_ref!r}")
                key = secrets.token_bytes(32)
                try:
                    conn.execute(insert(t).values(member_ref=member_ref, key=key, created_at=_now()))
                except IntegrityError:  # created concurrently: use theirs
                    key = conn.execute(select(t.c.key).where(t.c.member_ref == member_ref)).scalar_one()
        return pseudonym_of(bytes(key), self.node_id, member_ref)

    def pseudonyms(self, member_refs: list[str], *, create: bool = True) -> dict[str, str]:
        """Pseudonyms of many members in one transaction, creating missing keys unless ``create`` is false."""
        t = MemberKeyRecord.__table__
        keys: dict[str, bytes] = {}
        with self.engine.begin() as conn:
            for start in range(0, len(member_refs), 500):
                chunk = member_refs[start : start + 500]
                rows = conn.execute(select(t.c.member_ref, t.c.key).where(t.c.member_ref.in_(chunk))).all()
                keys.update({r.member_ref: bytes(r.key) for r in rows})
            if not create and len(keys) < len(set(member_refs)):
                gone = next(m for m in member_refs if m not in keys)
                raise MemberErasedError(f"no pseudonym key for member {gone!r}")
            missing = [
                {"member_ref": m, "key": secrets.token_bytes(32), "created_at": _now()}
                for m in dict.fromkeys(member_refs)
                if m not in keys
            ]
            if missing:
                conn.execute(insert(t), missing)
                keys.update({row["member_ref"]: row["key"] for row in missing})
        return {m: pseudonym_of(keys[m], self.node_id, m) for m in member_refs}

    def shred(self, member_ref: str) -> bool:
        """Delete the member's key; return whether there was one."""
        t = MemberKeyRecord.__table__
        with self.engine.begin() as conn:
            return conn.execute(delete(t).where(t.c.member_ref == member_ref)).rowcount == 1

    def live(self) -> set[str]:
        """The pseudonyms of every member whose key still exists (everyone not erased)."""
        t = MemberKeyRecord.__table__
        with self.engine.connect() as conn:
            return {pseudonym_of(bytes(k), self.node_id, m) for m, k in conn.execute(select(t.c.member_ref, t.c.key))}
