"""Who is calling: staff API keys (stored hashed) and short-lived member tokens signed by the node.

Roles: ``operator`` runs the node and issues member tokens for the brand's own app;
``compliance`` publishes notices and exports the audit trail; ``host`` is an entrusted party (PIPL
Art. 21) that hosts the node for the brand: it watches the node (health, readiness, metrics,
switches, logs' heads) and reads no identifier, sealed field or member's data; ``member`` acts on
their own data only. A staff key is 32 random bytes shown once; the database keeps its SHA-256 (a fast hash is
enough for a high-entropy secret). A member token is ``base64url(claims).base64url(signature)``,
signed with the node's Ed25519 key under a domain-separation prefix; its ``acct`` claim binds it to
one account (:mod:`node.core.tokens`), so erasure or revocation ends it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine, insert, select, update
from sqlmodel import Field, SQLModel

from ledger import note
from ledger.canonical import canonical_json

TOKEN_DOMAIN = b"alliance-member-token/v1\n"
DEFAULT_TOKEN_TTL = 15 * 60
KEY_PREFIX = "ank_"


class Role(StrEnum):
    """What a caller may do."""

    OPERATOR = "operator"
    COMPLIANCE = "compliance"
    HOST = "host"  # an entrusted host (PIPL Art. 21): runs and watches the node, reads no personal information
    MEMBER = "member"


class AuthError(Exception):
    """Missing, malformed, expired or unknown credentials (HTTP 401)."""


def _now() -> datetime:
    return datetime.now(UTC)


class StaffKeyRecord(SQLModel, table=True):
    """A staff API key: who holds it, their role, and the key's hash (never the key)."""

    __tablename__ = "node_staff_key"
    key_id: str = Field(primary_key=True, max_length=16)
    sha256: str = Field(max_length=64)
    name: str = Field(max_length=200)
    role: str = Field(max_length=20)
    created_at: datetime = Field(default_factory=_now)
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class Caller:
    """An authenticated caller."""

    role: Role
    id: str  # staff name, or the member's reference at this brand
    account: str | None = None  # a member token's account binding (its ``acct`` claim)
    key_id: str | None = None  # a staff key's id (what revocation names)
    use: str | None = None  # a member token made for one use only (its ``use`` claim): not an API credential


# Who the current request acts for, so audit events name their actor without every call passing it.
current_caller: ContextVar[Caller | None] = ContextVar("current_caller", default=None)


class StaffKeys:
    """Issue, check and revoke staff API keys."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create_schema(self) -> None:
        """Create the key table if missing."""
        SQLModel.metadata.create_all(self.engine, tables=[StaffKeyRecord.__table__])

    def issue(self, name: str, role: Role) -> str:
        """Create a key for ``name``; the returned secret is shown once and never stored."""
        if role is Role.MEMBER:
            raise ValueError("members authenticate with tokens, not staff keys")
        key_id = secrets.token_hex(6)
        secret = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        with self.engine.begin() as conn:
            conn.execute(
                insert(StaffKeyRecord.__table__).values(
                    key_id=key_id, sha256=_sha256(secret), name=name, role=role.value, created_at=_now()
                )
            )
        return secret

    def check(self, secret: str) -> Caller:
        """The caller a key belongs to, or :class:`AuthError`."""
        if not secret.startswith(KEY_PREFIX) or secret.count("_") < 2:
            raise AuthError("not a staff API key")
        key_id = secret[len(KEY_PREFIX) :].split("_", 1)[0]
        t = StaffKeyRecord.__table__
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.key_id == key_id)).first()
        if row is None or row.revoked_at is not None or not secrets.compare_digest(row.sha256, _sha256(secret)):
            raise AuthError("unknown or revoked staff API key")
        return Caller(Role(row.role), row.name, key_id=key_id)

    def active(self, key_id: str | None) -> bool:
        """Whether the key ``key_id`` still works (not revoked since a session was opened with it)."""
        t = StaffKeyRecord.__table__
        with self.engine.connect() as conn:
            revoked = conn.execute(select(t.c.revoked_at).where(t.c.key_id == key_id)).first()
        return revoked is not None and revoked.revoked_at is None

    def roles_of(self, name: str) -> set[Role]:
        """The roles ``name`` holds through active (unrevoked) keys."""
        t = StaffKeyRecord.__table__
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.c.role).where(t.c.name == name, t.c.revoked_at.is_(None))).scalars()
            return {Role(r) for r in rows}

    def revoke(self, key_id: str) -> bool:
        """Revoke a key by its id; return whether one was active."""
        t = StaffKeyRecord.__table__
        with self.engine.begin() as conn:
            return (
                conn.execute(
                    update(t).where(t.c.key_id == key_id, t.c.revoked_at.is_(None)).values(revoked_at=_now())
                ).rowcount
                == 1
            )


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue_member_token(
    signer: note.Signer,
    member_ref: str,
    ttl: int = DEFAULT_TOKEN_TTL,
    now: float | None = None,
    account: str | None = None,
    use: str | None = None,
) -> str:
    """A token that lets the brand's app act for ``member_ref``'s ``account`` for ``ttl`` seconds
    (with ``use``, only for that one use: the API refuses it)."""
    issued = int(now if now is not None else time.time())
    claims: dict[str, object] = {
        "iss": signer.name,
        "sub": member_ref,
        "iat": issued,
        "exp": issued + ttl,
        "jti": secrets.token_hex(8),
    }
    if account is not None:
        claims["acct"] = account
    if use is not None:
        claims["use"] = use
    payload = canonical_json(claims)
    return f"{_b64(payload)}.{_b64(signer.sign_raw(TOKEN_DOMAIN + payload))}"


def check_member_token(verifier: note.Verifier, token: str, now: float | None = None) -> Caller:
    """The member a token speaks for, or :class:`AuthError` (bad signature, other issuer, expired)."""
    try:
        payload_b64, sig_b64 = token.split(".")
        payload, sig = _unb64(payload_b64), _unb64(sig_b64)
        Ed25519PublicKey.from_public_bytes(verifier.public_key).verify(sig, TOKEN_DOMAIN + payload)
        claims = json.loads(payload)
    except (ValueError, InvalidSignature) as exc:
        raise AuthError("invalid member token") from exc
    if claims.get("iss") != verifier.name:
        raise AuthError("member token from another node")
    if not isinstance(claims.get("exp"), int) or claims["exp"] <= (now if now is not None else time.time()):
        raise AuthError("member token expired")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise AuthError("member token names no member")
    account, use = claims.get("acct"), claims.get("use")
    return Caller(
        Role.MEMBER,
        claims["sub"],
        account if isinstance(account, str) else None,
        use=use if isinstance(use, str) else None,
    )
