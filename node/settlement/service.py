"""Settlement and reconciliation across nodes: statements from the exchange log, swapped by signed
peer calls; checks of a peer's log through its signed checkpoint; the netting report; liability.

The arithmetic lives in :mod:`node.settlement` and :mod:`ledger.netting`; this module feeds it
from the node's own log and from peers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger import note
from ledger.checkpoint import open_checkpoint
from ledger.proof import verify_inclusion
from ledger.rfc6962 import leaf_hash
from node.exchange.service import ExchangeRefused
from node.peers.registry import Registry
from node.settlement.reconcile import Mismatch, between, compare, settled_exchanges
from node.settlement.statements import (
    Exchange,
    Liability,
    Reconciliation,
    Settlement,
    Statement,
    Window,
    carried_from_report,
    liability,
    net_settlement,
    obligations,
    reconcile,
    sign_statement,
    statement,
    verify_statement,
)

if TYPE_CHECKING:
    from node.runtime import Node

STATEMENT_PATH = "/v1/peer/settlement/statement"
RECORDS_PATH = "/v1/peer/exchanges/records"
NON_PI = {"window_start": "non_pi", "window_end": "non_pi", "statement": "non_pi", "signature": "non_pi"}


class SettlementError(Exception):
    """A settlement step that cannot go on (peer unreachable, bad signature, bad file)."""


def statement_to_json(s: Statement) -> dict[str, Any]:
    """A statement as JSON (the signed canonical form)."""
    return json.loads(s.canonical())


def statement_from_json(data: Any) -> Statement:
    """Rebuild a statement from :func:`statement_to_json` output, or :class:`SettlementError`."""
    try:
        return Statement(
            str(data["node_id"]),
            str(data["counterpart"]),
            datetime.fromisoformat(data["window_start"]),
            datetime.fromisoformat(data["window_end"]),
            tuple((str(x), str(d), str(a)) for x, d, a in data["lines"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SettlementError(f"not a settlement statement: {exc}") from exc


@dataclass(frozen=True)
class PairStatements:
    """Both sides' signed statements for one pair and window, and whether they agree."""

    window: Window
    mine: Statement
    my_sig: str
    theirs: Statement
    their_sig: str
    reconciliation: Reconciliation

    def to_json(self) -> dict[str, Any]:
        """What ``settle`` writes per pair: enough for anyone with the registry to check it."""
        r = self.reconciliation
        return {
            "window_start": self.window.start.isoformat(),
            "window_end": self.window.end.isoformat(),
            "statements": [
                {"statement": statement_to_json(self.mine), "signature": self.my_sig},
                {"statement": statement_to_json(self.theirs), "signature": self.their_sig},
            ],
            "agreed": r.agreed,
            "only_first": list(r.only_mine),
            "only_second": list(r.only_theirs),
            "amount_differs": list(r.amount_differs),
        }


@dataclass
class SettlementService:
    """Settlement and reconciliation for one node."""

    node: Node

    def _entries(self) -> list[bytes]:
        return [e.data for e in self.node.store.log("exchange").entries()]

    def my_statement(self, peer: str, window: Window) -> tuple[Statement, str]:
        """This node's signed statement of its window's exchanges with ``peer``."""
        s = statement(self.node.settings.node_id, peer, settled_exchanges(self._entries()), window)
        return s, sign_statement(s, self.node.signer)

    def on_statement(self, caller: str, window: Window, theirs_json: Any, their_sig: str) -> PairStatements:
        """Answer a peer's statement with ours, after checking it is theirs and about us."""
        theirs = statement_from_json(theirs_json)
        key = self.node.registry.brand(caller).verifier
        if theirs.node_id != caller or theirs.counterpart != self.node.settings.node_id:
            raise ExchangeRefused(403, "not_your_statement", "the statement is not between the caller and this node")
        if not verify_statement(theirs, their_sig, key):
            raise ExchangeRefused(422, "bad_signature", "the statement is not signed by the caller's registry key")
        if (theirs.window_start, theirs.window_end) != (window.start, window.end):
            raise ExchangeRefused(422, "wrong_window", "the statement covers another window")
        mine, my_sig = self.my_statement(caller, window)
        return PairStatements(window, mine, my_sig, theirs, their_sig, reconcile(mine, theirs))

    def swap_statements(self, peer: str, window: Window) -> PairStatements:
        """Send our statement to ``peer``, check theirs, and reconcile the two."""
        mine, my_sig = self.my_statement(peer, window)
        body = {
            "window_start": window.start.isoformat(),
            "window_end": window.end.isoformat(),
            "statement": statement_to_json(mine),
            "signature": my_sig,
        }
        answer = self._post(peer, STATEMENT_PATH, body)
        theirs = statement_from_json(answer.get("statement"))
        their_sig = str(answer.get("signature"))
        if theirs.node_id != peer or not verify_statement(theirs, their_sig, self.node.registry.brand(peer).verifier):
            raise SettlementError(f"{peer}'s statement is not signed by its registry key")
        return PairStatements(window, mine, my_sig, theirs, their_sig, reconcile(mine, theirs))

    # --- reconciliation of the logs ----------------------------------------------------------

    def records_for(self, caller: str) -> dict[str, Any]:
        """The caller's exchanges in this node's log, each with an inclusion proof, and the checkpoint."""
        log = self.node.store.log("exchange")
        checkpoint = log.current_checkpoint(self.node.signer)
        size = open_checkpoint(checkpoint, self.node.signer.verifier())[0].size
        mine = between((e.data for e in log.entries(0, size)), self.node.settings.node_id, caller)
        wanted = set(mine.values())
        records = [
            {
                "index": e.index,
                "data": note.b64encode(e.data),
                "proof": [note.b64encode(h) for h in log.inclusion_proof(e.index, size)],
            }
            for e in log.entries(0, size)
            if e.data in wanted
        ]
        return {"checkpoint": checkpoint, "records": records}

    def reconcile_with(self, peer: str) -> Mismatch:
        """Compare our exchange log with ``peer``'s, checking every record of theirs against their checkpoint."""
        answer = self._post(peer, RECORDS_PATH, {})
        key = self.node.registry.brand(peer).verifier
        try:
            cp, _ = open_checkpoint(str(answer["checkpoint"]), key)
        except Exception as exc:
            raise SettlementError(f"{peer}'s checkpoint does not verify under its registry key: {exc}") from exc
        theirs: list[bytes] = []
        for rec in answer.get("records", []):
            data = note.b64decode(rec["data"], "record")
            proof = [note.b64decode(h, "proof") for h in rec["proof"]]
            try:
                verify_inclusion(int(rec["index"]), cp.size, leaf_hash(data), proof, cp.root_hash)
            except Exception as exc:
                raise SettlementError(f"{peer} sent a record its checkpoint does not include: {exc}") from exc
            theirs.append(data)
        me = self.node.settings.node_id
        return compare(between(self._entries(), me, peer), between(theirs, me, peer))

    def _post(self, peer: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self.node.outbound.post(peer, path, json=body, fields=NON_PI)
        except Exception as exc:
            raise SettlementError(f"{peer} could not be reached: {exc}") from exc
        if response.status_code != 200:
            raise SettlementError(f"{peer} answered {response.status_code}: {response.text[:300]}")
        return response.json()

    # --- liability -------------------------------------------------------------------------------

    def liability(self, today: date) -> Liability:
        """Outstanding points (and their value) and breakage (expired points) at this brand."""
        outstanding, expired = self.node.wallets.totals(today)
        value = self.node.registry.brand(self.node.settings.node_id).point_value_fen
        return liability(self.node.settings.node_id, outstanding, expired, value)


# --- the netting report (anyone holding the statement files and the registry) -------------------


def net_from_files(
    paths: Iterable[Path], registry: Registry, previous_report: str | None = None
) -> tuple[Settlement, list[str]]:
    """Net every agreed, correctly signed pair statement; return the settlement and the disputes.

    ``previous_report`` is the JSON report of the window just before: the fractions of a fen it
    carried are added to this window's obligations.
    """
    seen: set[tuple[str, str, str, str]] = set()
    window_exchanges: list[Exchange] = []
    disputes: list[str] = []
    window: Window | None = None
    for path in paths:
        try:
            data = json.loads(path.read_text())
            (a, a_sig), (b, b_sig) = (
                (statement_from_json(s["statement"]), str(s["signature"])) for s in data["statements"]
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SettlementError(f"{path}: not a settlement file: {exc}") from exc
        for s, sig in ((a, a_sig), (b, b_sig)):
            if not verify_statement(s, sig, registry.brand(s.node_id).verifier):
                raise SettlementError(f"{path}: {s.node_id}'s statement signature does not verify")
        this = Window(a.window_start, a.window_end)
        if window is not None and (this.start, this.end) != (window.start, window.end):
            raise SettlementError(f"{path}: another window than the other files")
        window = this
        pair = tuple(sorted((a.node_id, b.node_id)))
        key = (this.start.isoformat(), this.end.isoformat(), *pair)
        if key in seen:
            continue  # both nodes of a pair wrote the same pair: count it once
        seen.add(key)  # type: ignore[arg-type]
        if not reconcile(a, b).agreed:
            disputes.append(f"{pair[0]} / {pair[1]}")
            continue
        for exchange_id, direction, amount in a.lines:
            src, dst = (a.node_id, b.node_id) if direction == "out" else (b.node_id, a.node_id)
            window_exchanges.append(
                Exchange(exchange_id, src, dst, 0, 0, Decimal(amount), Decimal(0), Decimal(0), this.start)
            )
    if window is None:
        raise SettlementError("no settlement files given")
    try:
        carried_in = carried_from_report(previous_report, window) if previous_report is not None else None
    except ValueError as exc:
        raise SettlementError(f"cannot carry from the previous report: {exc}") from exc
    return net_settlement(obligations(window_exchanges, window, carried_in), window), disputes
