"""Settlement and reconciliation with other nodes: statements from this node's exchange log, swapped by
signed peer calls; a peer's log checked through its signed checkpoint; this brand's liability.

The arithmetic lives in :mod:`node.settlement.statements` and :mod:`ledger.netting`; this module
feeds it from the node's own log and from peers. The netting report over statement files is
:mod:`node.settlement.report`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from ledger import note
from ledger.checkpoint import open_checkpoint
from ledger.proof import verify_inclusion
from ledger.rfc6962 import leaf_hash
from ledger.storage import Log
from ledger.tree import MemoryTree
from node.core.refusals import Refused
from node.peers.outbound import Outbound
from node.peers.registry import RegistryFile
from node.settlement.reconcile import (
    Mismatch,
    PairDigest,
    between,
    brands_of,
    compare,
    pair_digest,
    settled_exchanges,
)
from node.settlement.statements import (
    Liability,
    Reconciliation,
    SettlementError,
    Statement,
    Window,
    liability,
    reconcile,
    sign_statement,
    statement,
    statement_from_json,
    statement_to_json,
    verify_statement,
)
from node.wallet.store import WalletStore

STATEMENT_PATH = "/v1/peer/settlement/statement"
RECORDS_PATH = "/v1/peer/exchanges/records"
NON_PI = {
    "window_start": "non_pi",
    "window_end": "non_pi",
    "statement": "non_pi",
    "signature": "non_pi",
    "digest": "non_pi",
}


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

    node_id: str
    signer: note.Signer
    registry: RegistryFile
    exchange_log: Log
    outbound: Outbound
    wallets: WalletStore

    def _entries(self) -> list[bytes]:
        return [e.data for e in self.exchange_log.entries()]

    def my_statement(self, peer: str, window: Window) -> tuple[Statement, str]:
        """This node's signed statement of its window's exchanges with ``peer``."""
        s = statement(self.node_id, peer, settled_exchanges(self._entries()), window)
        return s, sign_statement(s, self.signer)

    def on_statement(self, caller: str, window: Window, theirs_json: Any, their_sig: str) -> PairStatements:
        """Answer a peer's statement with ours, after checking it is theirs and about us."""
        theirs = statement_from_json(theirs_json)
        key = self.registry.brand(caller).verifier
        if theirs.node_id != caller or theirs.counterpart != self.node_id:
            raise Refused("not_your_statement", "the statement is not between the caller and this node")
        if not verify_statement(theirs, their_sig, key):
            raise Refused("bad_signature", "the statement is not signed by the caller's registry key")
        if (theirs.window_start, theirs.window_end) != (window.start, window.end):
            raise Refused("wrong_window", "the statement covers another window")
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
        if theirs.node_id != peer or not verify_statement(theirs, their_sig, self.registry.brand(peer).verifier):
            raise SettlementError(f"{peer}'s statement is not signed by its registry key")
        return PairStatements(window, mine, my_sig, theirs, their_sig, reconcile(mine, theirs))

    # --- reconciliation of the logs ----------------------------------------------------------

    def digest_for(self, caller: str) -> dict[str, Any]:
        """The signed digest of the caller's exchanges in this node's log, and the checkpoint it is under."""
        log = self.exchange_log
        checkpoint = log.current_checkpoint(self.signer)
        cp = open_checkpoint(checkpoint, self.signer.verifier())[0]
        entries = ((e.data, e.leaf_hash) for e in log.entries(0, cp.size))
        digest = pair_digest(entries, self.node_id, caller, cp.size)
        return {"checkpoint": checkpoint, "digest": digest.to_json(self.signer)}

    def records_for(self, caller: str) -> dict[str, Any]:
        """The caller's exchanges in this node's log, each with an inclusion proof, and the checkpoint."""
        log = self.exchange_log
        checkpoint = log.current_checkpoint(self.signer)
        cp = open_checkpoint(checkpoint, self.signer.verifier())[0]
        pair = {self.node_id, caller}
        leaves: list[bytes] = []
        chosen: list[tuple[int, bytes]] = []
        for e in log.entries(0, cp.size):  # one pass: every leaf for the tree, the pair's entries kept
            leaves.append(e.leaf_hash)
            if brands_of(e.data) == pair:
                chosen.append((e.index, e.data))
        # the proofs from one in-memory tree, not a query each; it also checks the stored entries
        tree = MemoryTree(leaves)
        if tree.root() != cp.root_hash:
            raise SettlementError("this node's exchange log does not hash to its checkpoint: run `ledger check`")
        records = [
            {
                "index": i,
                "data": note.b64encode(d),
                "proof": [note.b64encode(h) for h in tree.inclusion_proof(i, cp.size)],
            }
            for i, d in chosen
        ]
        return {"checkpoint": checkpoint, "records": records}

    def reconcile_with(self, peer: str, proofs: bool = False) -> Mismatch:
        """Compare our exchange log with ``peer``'s.

        First the two digests of the pair's exchanges (:class:`PairDigest`): when they are equal the
        logs agree, checked without a proof per exchange. Only when they differ (or ``proofs`` is
        asked for) does the peer send every record, each checked against its signed checkpoint, to
        name the exchanges that differ.
        """
        if not proofs:
            answer = self._post(peer, RECORDS_PATH, {"digest": True})
            if "digest" not in answer and "records" in answer:  # a peer that predates digests sent its records
                return self.compare_records(peer, answer)
            agreed = self.compare_digest(peer, answer)
            if agreed is not None:
                return agreed
        return self.compare_records(peer, self._post(peer, RECORDS_PATH, {}))

    def compare_digest(self, peer: str, answer: dict[str, Any]) -> Mismatch | None:
        """Check ``peer``'s signed digest and compare it with ours: the agreement, or ``None`` if they differ."""
        key = self.registry.brand(peer).verifier
        try:
            cp, _ = open_checkpoint(str(answer["checkpoint"]), key)
            theirs = PairDigest.from_json(answer.get("digest"), key)
        except Exception as exc:
            raise SettlementError(f"{peer}'s digest does not verify under its registry key: {exc}") from exc
        if theirs.counterpart != self.node_id or theirs.log_size != cp.size:
            raise SettlementError(f"{peer}'s digest is not of its exchanges with {self.node_id} under its checkpoint")
        size = self.exchange_log.size
        mine = pair_digest(
            ((e.data, e.leaf_hash) for e in self.exchange_log.entries(0, size)), self.node_id, peer, size
        )
        return Mismatch((), (), (), mine.count) if mine.same_entries(theirs) else None

    def compare_records(self, peer: str, answer: dict[str, Any]) -> Mismatch:
        """Check ``peer``'s answer to a records call against its checkpoint, then compare with our log."""
        key = self.registry.brand(peer).verifier
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
        return compare(between(self._entries(), self.node_id, peer), between(theirs, self.node_id, peer))

    def _post(self, peer: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self.outbound.post(peer, path, json=body, fields=NON_PI)
        except Exception as exc:
            raise SettlementError(f"{peer} could not be reached: {exc}", "peer_unreachable") from exc
        if response.status_code != 200:
            raise SettlementError(f"{peer} answered {response.status_code}: {response.text[:300]}", "peer_refused")
        return response.json()

    def positions(self, window: Window) -> dict[str, tuple[Decimal, int]]:
        """This brand's net position with each partner in ``window`` (fen; positive: the partner owes
        this brand, for points this brand credited) and the exchanges behind it."""
        out: dict[str, tuple[Decimal, int]] = {}
        for x in settled_exchanges(self._entries()):
            if not window.holds(x.committed_at):
                continue
            if x.source == self.node_id:
                peer, fen = x.destination, -x.credited_fen
            elif x.destination == self.node_id:
                peer, fen = x.source, x.credited_fen
            else:
                continue
            total, n = out.get(peer, (Decimal(0), 0))
            out[peer] = (total + fen, n + 1)
        return dict(sorted(out.items()))

    # --- liability -------------------------------------------------------------------------------

    def liability(self, today: date) -> Liability:
        """Outstanding points (and their value) and breakage (expired points) at this brand."""
        outstanding, expired = self.wallets.totals(today)
        value = self.registry.brand(self.node_id).point_value_fen
        return liability(self.node_id, outstanding, expired, value)
