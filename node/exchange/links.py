"""Linking one member across two brands with pairwise link ids; raw identifiers never cross.

A member signed in at brand A asks for a **link code** for brand B: a one-time, short-lived code
(stored only as a hash) that they type into B's app while signed in there. B presents the code
to A (a signed peer call); A checks it is fresh, unused and meant for B, and both nodes record a
random **link id** for the pair. Peers only ever see link ids: a different one for every pair of
brands, so two partners cannot join their records on it. Linking needs the member's
``points_exchange:<other brand>`` consent on both sides, and withdrawing it unlinks.

The member's reference at this brand is kept with each code and link, sealed by the node's field
cipher: the consent gate works on references, and a credit arriving by link id must reach it.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, Text, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Column, Field, SQLModel

from compliance.fieldcrypt import FieldCipher
from compliance.read_once import forget, memoised
from node.core.refusals import Refused

CODE_TTL = timedelta(minutes=10)
SEALED_REF = "member_link.ref"  # the field-cipher context of the member reference kept with a link


class LinkError(Refused):
    """A link code or link the node refuses (``used_code``, ``expired_code``, ``already_linked``…)."""


class LinkCodeRow(SQLModel, table=True):
    """A link code, by hash: who asked, for which brand, until when, and whether it was used."""

    __tablename__ = "link_code"
    code_sha256: str = Field(primary_key=True, max_length=64)
    member: str = Field(max_length=64)
    peer: str = Field(max_length=200)
    expires_at: datetime
    used_at: datetime | None = None
    member_ref_sealed: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class MemberLinkRow(SQLModel, table=True):
    """A member's link with one partner brand (the history stays; ``unlinked_at`` ends it)."""

    __tablename__ = "member_link"
    link_id: str = Field(primary_key=True, max_length=32)
    member: str = Field(index=True, max_length=64)
    peer: str = Field(max_length=200)
    linked_at: datetime
    unlinked_at: datetime | None = None
    member_ref_sealed: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


def new_code() -> str:
    """A code a person can type: 16 base32 characters in four groups (80 random bits)."""
    raw = base64.b32encode(secrets.token_bytes(10)).decode()
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def code_hash(code: str) -> str:
    """What is stored instead of the code (case and dashes do not matter when typed)."""
    return hashlib.sha256(code.replace("-", "").strip().upper().encode()).hexdigest()


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class LinkStore:
    """Link codes and links of one node."""

    name = "links"  # the section of an access or portability export

    def __init__(self, engine: Engine, cipher: FieldCipher) -> None:
        self.engine = engine
        self.cipher = cipher

    def _seal(self, member_ref: str | None) -> str | None:
        return None if member_ref is None else self.cipher.seal(member_ref, SEALED_REF).hex()

    def _open(self, sealed: str | None) -> str | None:
        return None if sealed is None else self.cipher.open(bytes.fromhex(sealed), SEALED_REF)

    def export_member(self, member: str) -> list[dict[str, str | None]]:
        """The member's links, ended ones included, for an access request: brand, link id, when."""
        t = MemberLinkRow.__table__
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c.member == member).order_by(t.c.linked_at)).all()
        return [
            {
                "brand": r.peer,
                "link_id": r.link_id,
                "linked_at": _aware(r.linked_at).isoformat(),  # type: ignore[union-attr]
                "unlinked_at": r.unlinked_at and _aware(r.unlinked_at).isoformat(),  # type: ignore[union-attr]
            }
            for r in rows
        ]

    def issue_code(self, member: str, peer: str, now: datetime | None = None, member_ref: str | None = None) -> str:
        """A fresh one-time code for linking ``member`` (pseudonym here, reference ``member_ref``) with
        their account at ``peer``."""
        now = now or datetime.now(UTC)
        code = new_code()
        with self.engine.begin() as conn:
            conn.execute(
                insert(LinkCodeRow.__table__).values(
                    code_sha256=code_hash(code),
                    member=member,
                    peer=peer,
                    expires_at=now + CODE_TTL,
                    member_ref_sealed=self._seal(member_ref),
                )
            )
        return code

    def claim_code(self, code: str, peer: str, now: datetime | None = None) -> str:
        """Use a code presented by ``peer``: return the member it was issued to, once, or raise."""
        return self.claim(code, peer, now)[0]

    def claim(self, code: str, peer: str, now: datetime | None = None) -> tuple[str, str | None]:
        """:meth:`claim_code`, also returning the member's reference kept with the code."""
        forget()
        now = now or datetime.now(UTC)
        t = LinkCodeRow.__table__
        digest = code_hash(code)
        with self.engine.begin() as conn:
            row = conn.execute(select(t).where(t.c.code_sha256 == digest)).first()
            if row is None:
                raise LinkError("unknown_code", "no such link code")
            if row.peer != peer:
                raise LinkError("wrong_brand", "this link code was issued for another brand")
            if now >= _aware(row.expires_at):  # type: ignore[operator]
                raise LinkError("expired_code", "the link code has expired: ask for a new one")
            used = conn.execute(
                update(t).where(t.c.code_sha256 == digest, t.c.used_at.is_(None)).values(used_at=now)
            ).rowcount
            if used != 1:
                raise LinkError("used_code", "the link code was already used")
        return row.member, self._open(row.member_ref_sealed)

    def link(
        self, member: str, peer: str, link_id: str, now: datetime | None = None, member_ref: str | None = None
    ) -> None:
        """Record the pair's link id (and the member's reference, sealed); one active link per member and brand."""
        forget()
        if self.link_of(member, peer) is not None:
            raise LinkError("already_linked", f"the member is already linked with {peer}")
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(MemberLinkRow.__table__).values(
                        link_id=link_id,
                        member=member,
                        peer=peer,
                        linked_at=now or datetime.now(UTC),
                        member_ref_sealed=self._seal(member_ref),
                    )
                )
        except IntegrityError as exc:
            raise LinkError("link_id_taken", "that link id is already in use") from exc

    def link_of(self, member: str, peer: str) -> str | None:
        """The member's active link id with ``peer``."""
        return memoised(("link_of", member, peer), lambda: self._link_of(member, peer))

    def _link_of(self, member: str, peer: str) -> str | None:
        t = MemberLinkRow.__table__
        with self.engine.connect() as conn:
            return conn.execute(
                select(t.c.link_id).where(t.c.member == member, t.c.peer == peer, t.c.unlinked_at.is_(None))
            ).scalar_one_or_none()

    def member_of(self, peer: str, link_id: str, *, ended_too: bool = False) -> str | None:
        """Whom an active link id from ``peer`` names here (or one since ended, with ``ended_too``)."""
        t = MemberLinkRow.__table__
        query = select(t.c.member).where(t.c.link_id == link_id, t.c.peer == peer)
        with self.engine.connect() as conn:
            return conn.execute(query if ended_too else query.where(t.c.unlinked_at.is_(None))).scalar_one_or_none()

    def links_of(self, member: str) -> dict[str, str]:
        """The member's active links: peer -> link id."""
        t = MemberLinkRow.__table__
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.peer, t.c.link_id).where(t.c.member == member, t.c.unlinked_at.is_(None)))
            return {r.peer: r.link_id for r in rows}

    def member_ref(self, link_id: str) -> str | None:
        """The member's reference recorded with a link (active or ended); None once erased."""
        return memoised(("member_ref", link_id), lambda: self._member_ref(link_id))

    def _member_ref(self, link_id: str) -> str | None:
        t = MemberLinkRow.__table__
        with self.engine.connect() as conn:
            sealed = conn.execute(select(t.c.member_ref_sealed).where(t.c.link_id == link_id)).scalar_one_or_none()
        return self._open(sealed)

    def unlink(self, member: str, peer: str, now: datetime | None = None) -> bool:
        """End the member's link with ``peer``; return whether there was one."""
        forget()
        t = MemberLinkRow.__table__
        with self.engine.begin() as conn:
            return bool(
                conn.execute(
                    update(t)
                    .where(t.c.member == member, t.c.peer == peer, t.c.unlinked_at.is_(None))
                    .values(unlinked_at=now or datetime.now(UTC))
                ).rowcount
            )

    def erase_member(self, member: str, now: datetime | None = None) -> int:
        """Erasure (PIPL Art. 47): end the member's links, drop the sealed reference kept with each
        and their unused codes; return the rows touched.

        The link rows stay, holding only the pseudonym and the pairwise id, because committed
        exchanges name the link id; with the member's key shredded they point to no one, and a
        late credit on an ended link is refused as ``not_linked``.
        """
        forget()
        links, codes = MemberLinkRow.__table__, LinkCodeRow.__table__
        with self.engine.begin() as conn:
            ended = conn.execute(
                update(links)
                .where(links.c.member == member, links.c.unlinked_at.is_(None))
                .values(unlinked_at=now or datetime.now(UTC))
            ).rowcount
            cleared = conn.execute(
                update(links)
                .where(links.c.member == member, links.c.member_ref_sealed.is_not(None))
                .values(member_ref_sealed=None)
            ).rowcount
            dropped = conn.execute(delete(codes).where(codes.c.member == member)).rowcount
        return ended + cleared + dropped


def new_link_id() -> str:
    """A random pairwise link id (128 bits, hex)."""
    return secrets.token_hex(16)
