"""The nonces of peer calls already accepted, kept in the node's database for the signature window.

A signed peer call is accepted once: its nonce is recorded before the call is answered, so the
same signed bytes sent again are refused as ``replayed``, also after the node restarts (an
in-memory set would forget them). Rows are kept per peer and only a peer's own nonces that left
the window are ever deleted, so no peer's traffic can push another peer's nonces out early.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, Index, delete, insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel

from node.peers.signing import MAX_AGE, PeerAuthError

MAX_NONCE = 128  # characters; ours are 32 hex digits


class PeerNonceRow(SQLModel, table=True):
    """A nonce a peer signed a call with, and when it signed it."""

    __tablename__ = "peer_nonce"
    __table_args__ = (Index("ix_peer_nonce_peer_created", "peer", "created_at"),)
    peer: str = Field(primary_key=True, max_length=200)
    nonce: str = Field(primary_key=True, max_length=MAX_NONCE)
    created_at: datetime


class PeerNonces:
    """Seen nonces on the node's database (a :class:`node.peers.signing.NonceStore`)."""

    def __init__(self, engine: Engine, window: timedelta = MAX_AGE * 2) -> None:
        self.engine = engine
        # twice the signature's maximum age: a call older than MAX_AGE is refused as expired anyway
        self.window = window

    def seen(self, keyid: str, nonce: str, created: datetime) -> bool:
        """Record ``keyid``'s ``nonce``; return whether it was already recorded (a replay)."""
        if len(nonce) > MAX_NONCE:
            raise PeerAuthError("missing_component", f"a nonce has at most {MAX_NONCE} characters")
        t = PeerNonceRow.__table__
        try:
            with self.engine.connect() as conn, conn.execution_options(ledger_write=True).begin():
                cutoff = datetime.now(UTC) - self.window
                conn.execute(delete(t).where(t.c.peer == keyid, t.c.created_at < cutoff))
                conn.execute(insert(t).values(peer=keyid, nonce=nonce, created_at=created))
        except IntegrityError:
            return True
        return False
