"""The ``exchange`` log: both nodes append the same entry for every committed exchange.

The entry carries the quote, the source's signature and the destination's receipt
(:class:`node.exchange.records.CommittedExchange`). Where it lands on the log is recorded in the
append's own transaction, so a crash never loses an entry nor writes one twice: an exchange whose
record has no log position is appended again by recovery, and a second append of one already
logged rolls back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger import note
from ledger.storage import Log
from node.core import faults
from node.exchange.batches import logged_many
from node.exchange.records import CommittedExchange, sign_receipt
from node.exchange.store import (
    AlreadyLogged,
    DestinationSide,
    ExchangeInRow,
    ExchangeOutRow,
    Incoming,
    Outgoing,
    SourceSide,
)


@dataclass
class ExchangeLog:
    """Appends committed exchanges, as source or destination, to this node's ``exchange`` log."""

    log: Log
    signer: note.Signer
    outgoing: SourceSide
    incoming: DestinationSide

    def record_outgoing(self, out: Outgoing) -> None:
        """Log an exchange this node confirmed as its source."""
        self.record_outgoing_many([out])

    def record_incoming(self, incoming: Incoming) -> None:
        """Log an exchange this node credited as its destination (with its own receipt)."""
        self.record_incoming_many([incoming])

    def record_outgoing_many(self, outs: Sequence[Outgoing]) -> None:
        """Log exchanges this node confirmed as their source, in one append."""
        records = []
        for o in outs:
            assert o.destination_sig is not None
            records.append(CommittedExchange(o.quote, o.link_id, o.quote_sig, o.destination_sig))
        self._append(records, self.outgoing.engine, ExchangeOutRow.__tablename__)
        if records:
            faults.point("source.after_log")

    def record_incoming_many(self, incomings: Sequence[Incoming]) -> None:
        """Log exchanges this node credited as their destination (with its own receipts), in one append."""
        records = []
        for i in incomings:
            assert i.quote is not None
            assert i.quote_sig is not None
            assert i.link_id is not None
            records.append(CommittedExchange(i.quote, i.link_id, i.quote_sig, sign_receipt(i.quote, self.signer)))
        self._append(records, self.incoming.engine, ExchangeInRow.__tablename__)

    def _append(self, records: list[CommittedExchange], engine: Any, table: str) -> None:
        if not records:
            return
        try:
            ids = [r.quote.quote_id for r in records]
            self.log.append([r.entry() for r in records], then=logged_many(engine, table, ids))
        except AlreadyLogged:
            if len(records) == 1:
                return  # another thread appended it first: the rolled-back append left nothing behind
            for r in records:  # another thread logged some of them first: the rest one by one
                self._append([r], engine, table)
