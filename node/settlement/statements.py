"""Settlement between brands (pure): obligations from committed exchanges, signed statements, netting.

For a settlement window each node derives, from its own committed exchanges, what each brand owes
each other: the source of an exchange owes the destination the value the destination now honours
(``credited_fen`` of the quote); the fee and the rounding remainder stay with the source. Amounts
are exact ``Decimal`` fen until the one rounding per pair and window: the obligation is paid in
whole fen, rounded down, and the fraction is carried into the pair's next window (recorded, never
lost). Each pair swaps signed statements; they agree when both list the same exchanges with the
same amounts, and otherwise the differences are the dispute. Agreed obligations are netted
multilaterally (:mod:`ledger.netting`) into the fewest payments.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from ledger import note
from ledger.canonical import canonical_json
from ledger.netting import Payment, net_positions, settle
from node.core.refusals import Refused

STATEMENT_DOMAIN = b"alliance-statement/1\n"


@dataclass(frozen=True)
class Exchange:
    """A committed exchange as both nodes record it."""

    exchange_id: str
    source: str
    destination: str
    points_given: int
    points_received: int
    credited_fen: Decimal
    fee_fen: Decimal
    remainder_fen: Decimal
    committed_at: datetime


@dataclass(frozen=True)
class Window:
    """A settlement window ``[start, end)``."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError("a settlement window ends after it starts")

    def holds(self, at: datetime) -> bool:
        """Whether ``at`` falls in the window."""
        return self.start <= at < self.end


@dataclass(frozen=True)
class Obligation:
    """What ``debtor`` owes ``creditor`` for one window, in whole fen, and the fraction carried on."""

    debtor: str
    creditor: str
    exact_fen: Decimal  # the window's exchanges plus the fraction carried in
    fen: int  # paid: rounded down
    carried_fen: Decimal  # exact_fen - fen, carried into the next window
    exchanges: int


def obligations(
    exchanges: Iterable[Exchange], window: Window, carried_in: Mapping[tuple[str, str], Decimal] | None = None
) -> list[Obligation]:
    """Every pair's obligation for ``window`` (sources owe destinations what they credited)."""
    carried_in = carried_in or {}
    totals: dict[tuple[str, str], Decimal] = dict(carried_in)
    counts: dict[tuple[str, str], int] = {}
    for x in exchanges:
        if window.holds(x.committed_at):
            pair = (x.source, x.destination)
            totals[pair] = totals.get(pair, Decimal(0)) + x.credited_fen
            counts[pair] = counts.get(pair, 0) + 1
    out = []
    for (debtor, creditor), exact in sorted(totals.items()):
        fen = int(exact.to_integral_value(rounding=ROUND_FLOOR))
        out.append(Obligation(debtor, creditor, exact, fen, exact - fen, counts.get((debtor, creditor), 0)))
    return out


@dataclass(frozen=True)
class Statement:
    """One node's account of its exchanges with one counterpart in one window."""

    node_id: str
    counterpart: str
    window_start: datetime
    window_end: datetime
    lines: tuple[tuple[str, str, str], ...]  # (exchange_id, "out" or "in", credited_fen as text), sorted

    def canonical(self) -> bytes:
        """The bytes the node signs (canonical JSON)."""
        body = {
            "node_id": self.node_id,
            "counterpart": self.counterpart,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "lines": [list(line) for line in self.lines],
        }
        return canonical_json(body)

    @property
    def digest(self) -> str:
        """SHA-256 of the canonical bytes."""
        return hashlib.sha256(self.canonical()).hexdigest()


class SettlementError(Refused):
    """A settlement step that cannot go on (peer unreachable, bad signature, bad file)."""

    def __init__(self, message: str, reason: str = "bad_statement") -> None:
        super().__init__(reason, message)


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


def bilateral_digest(s: Statement) -> bytes:
    """SHA-256 of the statement in a form both sides share: the pair in id order and every line as
    seen from the first id. Two statements that agree give the same digest (what each side posts
    on chain); any difference in an exchange, a direction or an amount changes it."""
    first, second = sorted((s.node_id, s.counterpart))
    flip = s.node_id != first
    lines = sorted([x, {"out": "in", "in": "out"}.get(d, d) if flip else d, fen] for x, d, fen in s.lines)
    body = {
        "pair": [first, second],
        "window_start": s.window_start.isoformat(),
        "window_end": s.window_end.isoformat(),
        "lines": lines,
    }
    return hashlib.sha256(canonical_json(body)).digest()


def statement(node_id: str, counterpart: str, exchanges: Iterable[Exchange], window: Window) -> Statement:
    """``node_id``'s statement of its window's exchanges with ``counterpart``."""
    lines = []
    for x in exchanges:
        if not window.holds(x.committed_at):
            continue
        if (x.source, x.destination) == (node_id, counterpart):
            lines.append((x.exchange_id, "out", format(x.credited_fen, "f")))
        elif (x.source, x.destination) == (counterpart, node_id):
            lines.append((x.exchange_id, "in", format(x.credited_fen, "f")))
    return Statement(node_id, counterpart, window.start, window.end, tuple(sorted(lines)))


def sign_statement(s: Statement, signer: note.Signer) -> str:
    """The node's signature over its statement, base64."""
    if signer.name != s.node_id:
        raise ValueError(f"{signer.name} cannot sign {s.node_id}'s statement")
    return note.b64encode(signer.sign_raw(STATEMENT_DOMAIN + s.canonical()))


def verify_statement(s: Statement, signature: str, key: note.Verifier) -> bool:
    """Whether ``signature`` is the statement author's."""
    try:
        return key.name == s.node_id and key.verify(STATEMENT_DOMAIN + s.canonical(), note.b64decode(signature, "sig"))
    except Exception:
        return False


@dataclass(frozen=True)
class Reconciliation:
    """The outcome of comparing a pair's two statements."""

    agreed: bool
    only_mine: tuple[str, ...] = ()  # exchange ids the other side does not list
    only_theirs: tuple[str, ...] = ()
    amount_differs: tuple[str, ...] = field(default=())


def reconcile(mine: Statement, theirs: Statement) -> Reconciliation:
    """Compare statements of the same pair and window, seen from opposite sides."""
    if (mine.counterpart, mine.node_id) != (theirs.node_id, theirs.counterpart) or (
        mine.window_start,
        mine.window_end,
    ) != (theirs.window_start, theirs.window_end):
        raise ValueError("these statements are not about the same pair and window")
    flip = {"out": "in", "in": "out"}
    a = {x: (d, amt) for x, d, amt in mine.lines}
    b = {x: (flip[d], amt) for x, d, amt in theirs.lines}  # their "in" is my "out"
    only_mine = tuple(sorted(set(a) - set(b)))
    only_theirs = tuple(sorted(set(b) - set(a)))
    differs = tuple(sorted(x for x in set(a) & set(b) if a[x] != b[x]))
    return Reconciliation(not (only_mine or only_theirs or differs), only_mine, only_theirs, differs)


@dataclass(frozen=True)
class Settlement:
    """A window's net positions and the payments that settle them."""

    positions: dict[str, int]
    payments: tuple[Payment, ...]
    obligations: tuple[Obligation, ...]
    window: Window | None = None


def net_settlement(agreed: Iterable[Obligation], window: Window | None = None) -> Settlement:
    """Net the agreed obligations: positions sum to zero, and the fewest payments settle them."""
    obs = tuple(agreed)
    positions = net_positions((o.debtor, o.creditor, o.fen) for o in obs)
    return Settlement(positions, tuple(settle(positions)), obs, window)


def carried_from_report(report_json: str, window: Window) -> dict[tuple[str, str], Decimal]:
    """The fractions of a fen the previous window's JSON report carries into ``window``, per pair.

    The previous report must end exactly where ``window`` starts, so no fraction is carried twice
    or into the wrong window (``ValueError`` otherwise).
    """
    try:
        body = json.loads(report_json)
        previous = body["window"]
        end = datetime.fromisoformat(previous["end"])
        carried = {(str(o["debtor"]), str(o["creditor"])): Decimal(str(o["carried_fen"])) for o in body["obligations"]}
    except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
        raise ValueError(f"not a settlement report with a window: {exc}") from exc
    if end != window.start:
        raise ValueError(f"the previous report ends at {end.isoformat()}, not where this window starts")
    if any(not 0 <= fen < 1 for fen in carried.values()):
        raise ValueError("a carried amount is a fraction of a fen")
    return {pair: fen for pair, fen in carried.items() if fen}


def settlement_csv(s: Settlement) -> str:
    """The settlement report as CSV: one row per payment, then one per net position."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["record", "payer", "payee", "brand", "amount_fen"])
    for p in s.payments:
        w.writerow(["payment", p.payer, p.payee, "", p.amount])
    for brand, fen in sorted(s.positions.items()):
        w.writerow(["net_position", "", "", brand, fen])
    return out.getvalue()


def settlement_json(s: Settlement) -> str:
    """The settlement report as JSON (amounts in integer fen; carried fractions as exact decimals)."""
    body: dict[str, object] = {
        "positions_fen": dict(sorted(s.positions.items())),
        "payments": [{"payer": p.payer, "payee": p.payee, "amount_fen": p.amount} for p in s.payments],
        "obligations": [
            {
                "debtor": o.debtor,
                "creditor": o.creditor,
                "exchanges": o.exchanges,
                "exact_fen": format(o.exact_fen, "f"),
                "paid_fen": o.fen,
                "carried_fen": format(o.carried_fen, "f"),
            }
            for o in s.obligations
        ],
    }
    if s.window is not None:  # the next window's report carries this one's fractions on from here
        body["window"] = {"start": s.window.start.isoformat(), "end": s.window.end.isoformat()}
    return json.dumps(body, indent=2, sort_keys=True) + "\n"


@dataclass(frozen=True)
class Liability:
    """A brand's outstanding points and what they are worth; breakage is what expired unused."""

    brand: str
    outstanding_points: int
    liability_fen: Decimal
    expired_points: int
    breakage_fen: Decimal


def liability(brand: str, outstanding_points: int, expired_points: int, point_value_fen: Decimal) -> Liability:
    """Value a brand's outstanding and expired points at its registry point value."""
    if outstanding_points < 0 or expired_points < 0:
        raise ValueError("point counts are never negative")
    return Liability(
        brand,
        outstanding_points,
        outstanding_points * point_value_fen,
        expired_points,
        expired_points * point_value_fen,
    )
