"""Recovery after a crash: resume every unfinished exchange and log every committed one.

Every transition is journaled before any message is sent, so recovery is "do what the recorded
state calls for": the source resends credit or cancel (both idempotent on the exchange id), and
either side appends to its ``exchange`` log what it committed but had not logged yet. Both go in
batches: a backlog after a long outage is a few batch calls and appends, not one per exchange. ``serve``
runs it at start and every ``recovery_interval`` seconds; ``alliance-node exchange recover`` on demand.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from node.core.periodic import Periodic
from node.exchange.exchange_log import ExchangeLog
from node.exchange.protocol import SourceState
from node.exchange.source import ExchangeSource
from node.exchange.store import DestinationSide, SourceSide

log = logging.getLogger(__name__)


@dataclass
class RecoveryReport:
    """What one recovery pass did."""

    resumed: int = 0
    logged: int = 0
    still_pending: int = 0


@dataclass
class Recovery:
    """Finishes what a crash or an unreachable peer left open, on both sides."""

    source: ExchangeSource
    outgoing: SourceSide
    incoming: DestinationSide
    exchange_log: ExchangeLog
    #: the other duties owed to peers that a pass retries (the notices owed to joint handlers)
    also: Callable[[], object] | None = None

    def recover(self) -> RecoveryReport:
        """Resume every unfinished exchange and log every committed one not yet logged; then the rest owed."""
        report = RecoveryReport()
        for final in self.source.resume_many(self.outgoing.unfinished()):  # those a request drives are left out
            report.resumed += 1
            report.still_pending += final.state in (SourceState.HELD, SourceState.CANCELLING)
        unlogged_out, unlogged_in = self.outgoing.unlogged(), self.incoming.unlogged()
        self.exchange_log.record_outgoing_many(unlogged_out)
        self.exchange_log.record_incoming_many(unlogged_in)
        report.logged += len(unlogged_out) + len(unlogged_in)
        if self.also is not None:
            try:
                self.also()
            except Exception:  # the exchanges above are done: a failure here waits for the next pass
                log.exception("recovery: the duties owed to peers failed; retried at the next pass")
        return report


class RecoveryLoop(Periodic):
    """Runs :meth:`Recovery.recover` at start and then every ``interval`` seconds, in a thread."""

    def __init__(self, recovery: Recovery, interval: float) -> None:
        self.recovery = recovery
        super().__init__("exchange-recovery", interval, self._pass, log)

    def _pass(self) -> None:
        report = self.recovery.recover()
        if report.resumed or report.logged:
            log.info("exchange recovery: %s", report)
