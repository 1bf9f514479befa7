"""Comparing two nodes' exchange logs, and reading settlement facts from a log (pure).

Each committed exchange is one entry, the same bytes on both nodes (:mod:`node.exchange_records`).
For a pair of brands, each side's log must therefore hold exactly the same set of entries
between them: anything else is a mismatch worth an operator's attention (an exchange one side
never logged, or one whose bytes differ).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from ledger import note
from ledger.canonical import canonical_json
from ledger.tree import MemoryTree
from node.exchange.records import ENTRY_TYPE, CommittedExchange, RecordError
from node.settlement.statements import Exchange

DIGEST_DOMAIN = b"alliance-pair-digest/1\n"


def _quote_of(data: bytes) -> dict | None:
    """An exchange entry's quote as JSON, not parsed further (``None``: not an exchange entry)."""
    try:
        raw = json.loads(data)
    except ValueError:
        return None
    quote = raw.get("quote") if isinstance(raw, dict) and raw.get("type") == ENTRY_TYPE else None
    return quote if isinstance(quote, dict) else None


def brands_of(data: bytes) -> set[str] | None:
    """The two brands of an exchange entry (``None``: not one)."""
    quote = _quote_of(data)
    return None if quote is None else {str(quote.get("source")), str(quote.get("destination"))}


def between(entries: Iterable[bytes], a: str, b: str) -> dict[str, bytes]:
    """The exchange entries between brands ``a`` and ``b`` (either direction), by exchange id.

    Only the entries' JSON is read: comparing two logs needs their bytes and ids, not their quotes'
    amounts (settlement reads those through :func:`settled_exchanges`).
    """
    out: dict[str, bytes] = {}
    for data in entries:
        quote = _quote_of(data)
        if quote is not None and {quote.get("source"), quote.get("destination")} == {a, b}:
            out[str(quote.get("quote_id"))] = data
    return out


@dataclass(frozen=True)
class Mismatch:
    """How two logs differ on a pair's exchanges."""

    only_mine: tuple[str, ...]
    only_theirs: tuple[str, ...]
    differs: tuple[str, ...]
    common: int

    @property
    def agreed(self) -> bool:
        """Both logs hold the same entries."""
        return not (self.only_mine or self.only_theirs or self.differs)


def compare(mine: dict[str, bytes], theirs: dict[str, bytes]) -> Mismatch:
    """Compare a pair's entries as each node logged them."""
    return Mismatch(
        tuple(sorted(set(mine) - set(theirs))),
        tuple(sorted(set(theirs) - set(mine))),
        tuple(sorted(x for x in set(mine) & set(theirs) if mine[x] != theirs[x])),
        len(set(mine) & set(theirs)),
    )


@dataclass(frozen=True)
class PairDigest:
    """One node's commitment to a pair's exchanges: how many, and the Merkle root of their entries.

    The root is RFC 6962's tree hash over the entries' leaf hashes in exchange-id order, an order
    both nodes share whatever order they logged in. Equal digests mean equal sets of entries, so
    two nodes that agree need not send or check one proof per exchange.
    """

    node_id: str
    counterpart: str
    log_size: int
    count: int
    root: bytes

    def canonical(self) -> bytes:
        """The bytes a node signs."""
        return canonical_json(
            {
                "node_id": self.node_id,
                "counterpart": self.counterpart,
                "log_size": self.log_size,
                "count": self.count,
                "root": note.b64encode(self.root),
            }
        )

    def same_entries(self, other: PairDigest) -> bool:
        """Whether both digests commit to the same entries (whoever made them)."""
        return (self.count, self.root) == (other.count, other.root)

    def to_json(self, signer: note.Signer) -> dict[str, object]:
        """The digest with its author's signature, for a records call's answer."""
        return {
            **json.loads(self.canonical()),
            "signature": note.b64encode(signer.sign_raw(DIGEST_DOMAIN + self.canonical())),
        }

    @classmethod
    def from_json(cls, data: object, key: note.Verifier) -> PairDigest:
        """A digest from :meth:`to_json`, checked against its author's key (``ValueError`` if it does not verify)."""
        if not isinstance(data, dict):
            raise ValueError("the digest is not an object")
        try:
            d = cls(
                str(data["node_id"]),
                str(data["counterpart"]),
                int(data["log_size"]),
                int(data["count"]),
                note.b64decode(str(data["root"]), "root"),
            )
            sig = note.b64decode(str(data["signature"]), "signature")
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a pair digest: {exc}") from exc
        if d.node_id != key.name or not key.verify(DIGEST_DOMAIN + d.canonical(), sig):
            raise ValueError(f"the digest is not signed by {key.name}'s registry key")
        return d


def pair_digest(entries: Iterable[tuple[bytes, bytes]], node_id: str, counterpart: str, log_size: int) -> PairDigest:
    """The digest of the exchanges between two brands among ``(entry, leaf hash)`` pairs of a log."""
    pair = {node_id, counterpart}
    chosen: list[tuple[str, bytes]] = []
    for data, leaf in entries:
        quote = _quote_of(data)
        if quote is not None and {quote.get("source"), quote.get("destination")} == pair:
            chosen.append((str(quote.get("quote_id")), leaf))
    chosen.sort()
    return PairDigest(node_id, counterpart, log_size, len(chosen), MemoryTree([leaf for _, leaf in chosen]).root())


def settled_exchanges(entries: Iterable[bytes]) -> list[Exchange]:
    """The committed exchanges of a log, for settlement.

    An exchange belongs to the window of its quote's issue time: both nodes read it from the
    same signed bytes, so they always put it in the same window.
    """
    out = []
    for data in entries:
        try:
            q = CommittedExchange.from_entry(data).quote
        except RecordError:
            continue
        out.append(
            Exchange(
                q.quote_id,
                q.source,
                q.destination,
                q.points_given,
                q.points_received,
                q.credited_fen,
                q.fee_fen,
                q.remainder_fen,
                q.issued_at,
            )
        )
    return out
