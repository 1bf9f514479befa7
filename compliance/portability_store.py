"""Where portability lives at the receiving brand: the one-time codes members ask for, and what was kept.

A code is stored by its hash, bound to the member who asked (by pseudonym), the brand that may use
it and its request, for :data:`CODE_TTL`; using it marks it used in the transaction that keeps the
data, so a code carries one export, once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Text, delete, insert, select, update
from sqlmodel import Column, Field, SQLModel

from compliance.fieldcrypt import FieldCipher
from compliance.portability import code_hash, new_code

CODE_TTL = timedelta(minutes=30)
SEALED_REF = "port_code.ref"  # the sealing context of the member's reference kept with a code


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class PortCodeRow(SQLModel, table=True):
    """A portability code, by hash: whose, from which brand, for which request, until when, used or not."""

    __tablename__ = "compliance_port_code"
    code_sha256: str = Field(primary_key=True, max_length=64)
    member: str = Field(max_length=32)
    sender: str = Field(max_length=200)
    dsr_id: str = Field(max_length=32)
    expires_at: datetime
    used_at: datetime | None = None
    member_ref_sealed: str = Field(sa_column=Column(Text, nullable=False))  # whose notice and consents apply


class PortedRow(SQLModel, table=True):
    """Data another brand sent at the member's request, as kept here (only what the notice covers)."""

    __tablename__ = "compliance_ported"
    dsr_id: str = Field(primary_key=True, max_length=32)
    member: str = Field(max_length=32, index=True)
    sender: str = Field(max_length=200)
    received_at: datetime
    kept: str = Field(sa_column=Column(Text, nullable=False))  # JSON: field -> value
    skipped: str = Field(sa_column=Column(Text, nullable=False))  # JSON: field -> reason


@dataclass(frozen=True)
class PendingCode:
    """A code a member asked for, still unused."""

    member: str
    member_ref: str
    sender: str
    dsr_id: str
    expires_at: datetime


class CodeRefused(Exception):
    """The code is unknown, someone else's, already used or expired (``reason`` says which)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class PortabilityStore:
    """Codes and kept data at the receiving brand."""

    def __init__(self, engine: Engine, cipher: FieldCipher) -> None:
        self.engine = engine
        self.cipher = cipher

    def issue(self, member: str, member_ref: str, sender: str, dsr_id: str, now: datetime | None = None) -> str:
        """A fresh one-time code the member gives ``sender`` to send their data here."""
        code = new_code()
        row = {
            "code_sha256": code_hash(code),
            "member": member,
            "sender": sender,
            "dsr_id": dsr_id,
            "expires_at": (now or datetime.now(UTC)) + CODE_TTL,
            "member_ref_sealed": self.cipher.seal(member_ref, SEALED_REF).hex(),
        }
        with self.engine.begin() as conn:
            conn.execute(insert(PortCodeRow.__table__), [row])
        return code

    def pending(self, code: str, sender: str, now: datetime | None = None) -> PendingCode:
        """The unused code ``sender`` presents, or :class:`CodeRefused`."""
        t = PortCodeRow.__table__
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.code_sha256 == code_hash(code))).first()
        if row is None or row.sender != sender:
            raise CodeRefused("unknown_code", "no such portability code for this brand: the member asks for one here")
        if row.used_at is not None:
            raise CodeRefused("used_code", "this portability code was used already")
        expires = _aware(row.expires_at)
        assert expires is not None
        if (now or datetime.now(UTC)) >= expires:
            raise CodeRefused("expired_code", "this portability code expired: the member asks for a new one")
        member_ref = self.cipher.open(bytes.fromhex(row.member_ref_sealed), SEALED_REF)
        return PendingCode(row.member, member_ref, row.sender, row.dsr_id, expires)

    def keep(
        self,
        code: str,
        pending: PendingCode,
        kept: dict[str, Any],
        skipped: dict[str, str],
        now: datetime | None = None,
    ) -> bool:
        """Use the code and keep the data, in one transaction; False if the code was used meanwhile."""
        now = now or datetime.now(UTC)
        t = PortCodeRow.__table__
        with self.engine.begin() as conn:
            used = conn.execute(
                update(t).where(t.c.code_sha256 == code_hash(code), t.c.used_at.is_(None)).values(used_at=now)
            ).rowcount
            if not used:
                return False
            conn.execute(
                insert(PortedRow.__table__),
                [
                    {
                        "dsr_id": pending.dsr_id,
                        "member": pending.member,
                        "sender": pending.sender,
                        "received_at": now,
                        "kept": json.dumps(kept, sort_keys=True),
                        "skipped": json.dumps(skipped, sort_keys=True),
                    }
                ],
            )
        return True

    # --- the member's data sources (access and erasure) -------------------------------------------

    name = "ported_data"

    def export_member(self, member: str) -> list[dict[str, Any]]:
        """What other brands sent at the member's request and was kept here, for their access request."""
        t = PortedRow.__table__
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c.member == member).order_by(t.c.received_at)).all()
        return [
            {
                "from": r.sender,
                "received_at": _aware(r.received_at).isoformat(),  # type: ignore[union-attr]
                "kept": json.loads(r.kept),
                "skipped": json.loads(r.skipped),
            }
            for r in rows
        ]

    def erase_member(self, member: str) -> int:
        """Erasure: the member's kept data and unused codes."""
        with self.engine.begin() as conn:
            gone = conn.execute(delete(PortedRow.__table__).where(PortedRow.__table__.c.member == member)).rowcount
            t = PortCodeRow.__table__
            return int(gone + conn.execute(delete(t).where(t.c.member == member)).rowcount)
