"""The netting report over a window's pair statement files: anyone holding them and the registry can run it.

Every statement's signature is checked against the registry; agreed pairs are netted
(:func:`node.settlement.statements.net_settlement`) into positions summing to zero and the fewest
payments; pairs that disagree are listed as disputes. ``alliance-node settlement report``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path

from node.peers.registry import BrandBook
from node.settlement.contributions import Contribution, is_contributions, read_contributions
from node.settlement.statements import (
    Exchange,
    Settlement,
    SettlementError,
    Window,
    carried_from_report,
    net_settlement,
    obligations,
    reconcile,
    statement_from_json,
    verify_statement,
)


def split_contributions(paths: Iterable[Path], registry: BrandBook) -> tuple[list[Path], list[Contribution]]:
    """The pair statement files, and the contributions of the contributions files among ``paths``
    (each checked against its label holder's key in the registry)."""
    pairs: list[Path] = []
    found: list[Contribution] = []
    for path in paths:
        try:
            data = json.loads(path.read_text())
        except ValueError as exc:
            raise SettlementError(f"{path}: not JSON: {exc}") from exc
        if not is_contributions(data):
            pairs.append(path)
            continue
        try:
            key = registry.brand(str(data.get("label_holder"))).verifier
            seen = {(c.label_holder, c.run, c.partner) for c in found}  # both copies of one file count once
            found += [c for c in read_contributions(data, key)[1] if (c.label_holder, c.run, c.partner) not in seen]
        except (LookupError, SettlementError) as exc:
            raise SettlementError(f"{path}: {exc}") from exc
    return pairs, found


def net_from_files(
    paths: Iterable[Path], registry: BrandBook, previous_report: str | None = None
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
