"""The demo's chain phase (``alliance-node demo --chain``): anchoring and settlement on an EVM chain.

On the embedded chain (py-evm) it deploys the alliance's contracts, registers the three brands,
has each node anchor the checkpoints of all its logs, posts both sides' settlement statements for
the window the money path closed and closes it with the net positions (every brand named, one
without an exchange at 0), then runs `chain verify` on every log (passing) and on a copy of one
log with one byte of an entry's data rewritten in the database, as anyone holding the file could
(failing).
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table
from web3 import Web3

from contracts.anchoring import AnchorPolicy
from contracts.client import Alliance, Chain, ChainRefused
from contracts.verify import Finding, check_against_chain
from ledger.storage import INDEX_BITS, LedgerStore, create_engine
from node.chain.anchoring import Anchorer
from node.chain.settlement import complete_positions
from node.runtime import Node
from node.settlement.statements import bilateral_digest, statement_from_json


@dataclass
class ChainResult:
    """What the chain phase proved."""

    anchored: dict[str, int] = field(default_factory=dict)  # origin -> size
    pairs_confirmed: int = 0
    window_closed: bool = False
    close_refused: str = ""  # the settlement contract's reason, if it refused to close the window
    verified: list[Finding] = field(default_factory=list)
    rewritten: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Everything anchored verifies, the window closed, and the rewritten copy is caught."""
        return (
            bool(self.anchored)
            and all(f.ok for f in self.verified)
            and any(f.kind == "diverged" for f in self.rewritten)
            and (self.window_closed or self.pairs_confirmed == 0)
            and not self.close_refused
        )


def chain_phase(base: Path, nodes: dict[str, Node], positions: dict[str, int], console: Console) -> ChainResult:
    """Run the phase; ``positions`` are the money path's net positions by node id (empty: no window)."""
    result = ChainResult()
    chain = Chain.embedded()
    owner, *accounts = chain.accounts
    alliance = Alliance.deploy(chain, owner)
    account_of = {node.settings.node_id: accounts[i] for i, node in enumerate(nodes.values())}
    for node_id, account in account_of.items():
        alliance.add_brand(account, node_id, owner)
    console.print(
        f"Embedded chain (py-evm): registry {alliance.registry.address}, anchor {alliance.anchor.address}, "
        f"settlement {alliance.settlement.address}; brands registered by the owner."
    )
    for node in nodes.values():
        anchorer = Anchorer(node.store, chain, alliance.anchor, account_of[node.settings.node_id], AnchorPolicy(1, 1.0))
        result.anchored.update(anchorer.tick())
    settlement_dir = base / "settlement"
    files = sorted(settlement_dir.glob("*__*.json")) if settlement_dir.exists() else []
    window_id = b""
    for path in files:
        pair = json.loads(path.read_text())
        window_id = Web3.keccak(text=f"{pair['window_start']}/{pair['window_end']}")
        for side in pair["statements"]:
            s = statement_from_json(side["statement"])
            alliance.post_statement(window_id, account_of[s.counterpart], bilateral_digest(s), account_of[s.node_id])
        first = statement_from_json(pair["statements"][0]["statement"])
        if alliance.pair_status(window_id, account_of[first.node_id], account_of[first.counterpart]) == "confirmed":
            result.pairs_confirmed += 1
    if files and positions and result.pairs_confirmed == len(files):
        # every registered brand is named: one without an exchange in the window closes at 0
        every = complete_positions(positions, account_of)
        try:
            alliance.close_window(window_id, [(account_of[n], p) for n, p in every.items()], accounts[0])
            result.window_closed = True
        except ChainRefused as exc:  # reported as a failed phase, not a traceback
            result.close_refused = exc.reason
    for node in nodes.values():
        for name in node.store.log_names():
            log = node.store.log(name)
            result.verified += check_against_chain(log, alliance.anchors(log.origin))
    victim = next(iter(nodes.values())).store.log("audit")
    result.rewritten = check_against_chain(_rewritten_copy(victim), alliance.anchors(victim.origin))
    _print(result, len(files), console)
    return result


def _rewritten_copy(log) -> object:  # type: ignore[no-untyped-def]
    """A copy of ``log`` in a scratch database, then one byte of entry 1's data changed in the file itself.

    The way anyone holding the database could: drop the append-only trigger and update the row, leaving the
    stored subtree hashes and the head as they were, so only rehashing the data shows the change.
    """
    scratch = Path(tempfile.mkdtemp(prefix="rewritten-")) / "copy.db"
    store = LedgerStore(create_engine(f"sqlite:///{scratch}"))
    store.create_schema()
    copy = store.create_log(log.name, log.origin)
    copy.append([e.data for e in log.entries()])
    with closing(sqlite3.connect(scratch)) as conn, conn:  # closed, after the transaction commits
        conn.execute("DROP TRIGGER ledger_entry_no_update")
        key = (copy.id << INDEX_BITS) + 1
        (data,) = conn.execute("SELECT data FROM ledger_entry WHERE entry_key = ?", (key,)).fetchone()
        conn.execute("UPDATE ledger_entry SET data = ? WHERE entry_key = ?", (data[:-1] + bytes([data[-1] ^ 1]), key))
    return copy


def _print(result: ChainResult, pairs: int, console: Console) -> None:
    table = Table(
        title="Anchored on chain, then `chain verify` (data rehashed; consistency proofs against anchored roots)"
    )
    for col in ("log", "anchored size", "chain verify"):
        table.add_column(col)
    for origin, size in sorted(result.anchored.items()):
        kinds = {f.kind for f in result.verified if f.origin == origin}
        table.add_row(origin, f"{size:,}", "OK" if kinds == {"consistent"} else ", ".join(sorted(kinds)))
    console.print(table)
    console.print(
        f"Settlement on chain: {result.pairs_confirmed} of {pairs} pairs confirmed by matching statement hashes; "
        + ("window closed with positions summing to zero." if result.window_closed else "window not closed.")
    )
    if result.close_refused:
        console.print(f"[red]The settlement contract refused to close the window: {result.close_refused}[/red]")
    bad = [f for f in result.rewritten if not f.ok]
    console.print(
        f"A rewritten copy of {result.rewritten[0].origin if result.rewritten else 'a log'} (one byte of entry 1): "
        f"chain verify reports {len(bad)} of {len(result.rewritten)} anchors "
        + (f"{bad[0].kind.upper()}: {bad[0].detail}" if bad else "consistent (NOT caught)")
    )
