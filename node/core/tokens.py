"""Member tokens bound to one account: erasure, re-registration or an operator's revocation ends them.

A token names the member's reference (``sub``) and, in ``acct``, the account it was issued for:
a digest of the member's pseudonym, which erasure shreds and a re-registration replaces, and the
account's token generation, which an operator's revocation moves on. A token whose ``acct`` is
not the account's current one is refused, so an old token can never read a new account that
happens to reuse the reference.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel

from compliance.pseudonyms import Keyring, MemberErasedError
from ledger import note
from node.core.auth import DEFAULT_TOKEN_TTL, AuthError, Caller, check_member_token, issue_member_token

_ACCOUNT_DOMAIN = b"alliance-member-account/1\n"


class TokenGenerationRow(SQLModel, table=True):
    """How many times a member's tokens were revoked (absent: never), by the member's pseudonym."""

    __tablename__ = "member_token_generation"
    member: str = Field(primary_key=True, max_length=64)
    generation: int
    revoked_at: datetime


def account_binding(pseudonym: str, generation: int) -> str:
    """The ``acct`` claim of a token for this account and generation (the pseudonym does not show)."""
    digest = hashlib.sha256(_ACCOUNT_DOMAIN + pseudonym.encode()).hexdigest()[:32]
    return f"{digest}.{generation}"


class MemberTokens:
    """Issue, check and revoke one node's member tokens (also a rights-request data source)."""

    name = "member_tokens"  # the section of an access export

    def __init__(self, engine: Engine, signer: note.Signer, keyring: Keyring) -> None:
        self.engine = engine
        self.signer = signer
        self.keyring = keyring

    def _current(self, member_ref: str) -> tuple[str, int]:
        try:
            pseudonym = self.keyring.pseudonym(member_ref, create=False)
        except (MemberErasedError, LookupError) as exc:
            raise AuthError("member token for an account that no longer exists") from exc
        t = TokenGenerationRow.__table__
        with self.engine.connect() as conn:
            generation = conn.execute(select(t.c.generation).where(t.c.member == pseudonym)).scalar_one_or_none()
        return pseudonym, generation or 0

    def issue(
        self, member_ref: str, ttl: int = DEFAULT_TOKEN_TTL, now: float | None = None, use: str | None = None
    ) -> str:
        """A token for the member's current account, valid ``ttl`` seconds (with ``use``: for that use only)."""
        pseudonym, generation = self._current(member_ref)
        return issue_member_token(self.signer, member_ref, ttl, now, account_binding(pseudonym, generation), use)

    def check(self, token: str, now: float | None = None, use: str | None = None) -> Caller:
        """The member a token speaks for, or :class:`AuthError` (also for another or a revoked account,
        and for a token made for another use than ``use``: an API call takes only plain tokens)."""
        caller = check_member_token(self.signer.verifier(), token, now)
        if caller.use != use:
            raise AuthError(f"this member token is for {caller.use or 'the API'}, not for {use or 'the API'}")
        pseudonym, generation = self._current(caller.id)
        if caller.account is None or not hmac.compare_digest(caller.account, account_binding(pseudonym, generation)):
            raise AuthError("member token revoked, or issued for an account that no longer exists")
        return caller

    def still_current(self, caller: Caller) -> bool:
        """Whether a member checked earlier still speaks for the same account (not erased, not revoked)."""
        try:
            pseudonym, generation = self._current(caller.id)
        except AuthError:
            return False
        current = account_binding(pseudonym, generation)
        return caller.account is not None and hmac.compare_digest(caller.account, current)

    def export_member(self, member: str) -> dict[str, object]:
        """How often the member's tokens were revoked, and when last (pseudonym ``member``)."""
        t = TokenGenerationRow.__table__
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.member == member)).first()
        return {"revocations": row.generation if row else 0, "last_revoked_at": row and row.revoked_at.isoformat()}

    def erase_member(self, member: str) -> int:
        """Erasure: forget the member's token generation (their pseudonym goes with their key anyway)."""
        t = TokenGenerationRow.__table__
        with self.engine.connect() as conn, conn.execution_options(ledger_write=True).begin():
            return conn.execute(delete(t).where(t.c.member == member)).rowcount

    def revoke(self, member_ref: str) -> int:
        """End every token issued so far for the member's account; return the new generation."""
        try:
            return self._revoke(member_ref)
        except IntegrityError:  # a concurrent first revocation inserted the row: move on from it
            return self._revoke(member_ref)

    def _revoke(self, member_ref: str) -> int:
        pseudonym, generation = self._current(member_ref)
        t = TokenGenerationRow.__table__
        values = {"generation": generation + 1, "revoked_at": datetime.now(UTC)}
        with self.engine.connect() as conn, conn.execution_options(ledger_write=True).begin():
            moved = conn.execute(
                update(t).where(t.c.member == pseudonym, t.c.generation == generation).values(**values)
            ).rowcount
            if not moved:
                conn.execute(insert(t).values(member=pseudonym, **values))
        return generation + 1
