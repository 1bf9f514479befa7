"""The ``exchange`` log: both nodes append the same entry for every committed exchange.

The entry carries the quote, the source's signature and the destination's receipt
(:class:`node.exchange.records.CommittedExchange`). Where it lands on the log is recorded in the
append's own transaction, so a crash never loses an entry nor writes one twice: an exchange whose
record has no log position is appended again by recovery, and a second append of one already
logged rolls back.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from ledger import note
from ledger.storage import Log
from node.core import faults
from node.exchange.records import CommittedExchange, sign_receipt
from node.exchange.store import AlreadyLogged, DestinationSide, Incoming, Outgoing, SourceSide


@dataclass
class ExchangeLog:
    """Appends committed exchanges, as source or destination, to this node's ``exchange`` log."""

    log: Log
    signer: note.Signer
    outgoing: SourceSide
    incoming: DestinationSide

    def record_outgoing(self, out: Outgoing) -> None:
        """Log an exchange this node confirmed as its source."""
        assert out.destination_sig is not None
        record = CommittedExchange(out.quote, out.link_id, out.quote_sig, out.destination_sig)
        self._append(record, self.outgoing.logged_at(out.exchange_id))
        faults.point("source.after_log")

    def record_incoming(self, incoming: Incoming) -> None:
        """Log an exchange this node credited as its destination (with its own receipt)."""
        assert incoming.quote is not None
        assert incoming.quote_sig is not None
        assert incoming.link_id is not None
        receipt = sign_receipt(incoming.quote, self.signer)
        record = CommittedExchange(incoming.quote, incoming.link_id, incoming.quote_sig, receipt)
        self._append(record, self.incoming.logged_at(incoming.exchange_id))

    def _append(self, record: CommittedExchange, mark: Callable[[Any, int], None]) -> None:
        # another thread appended it first: the rolled-back append left nothing behind
        with suppress(AlreadyLogged):
            self.log.append([record.entry()], then=mark)
