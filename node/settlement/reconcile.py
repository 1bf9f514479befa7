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

from node.exchange.records import ENTRY_TYPE, CommittedExchange, RecordError
from node.settlement.statements import Exchange


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
