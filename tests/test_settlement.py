"""Settlement: obligations from committed exchanges, signed statements that agree or dispute, net payments."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import note
from node.settlement.statements import (
    Exchange,
    Window,
    bilateral_digest,
    carried_from_report,
    liability,
    net_settlement,
    obligations,
    reconcile,
    settlement_csv,
    settlement_json,
    sign_statement,
    statement,
    verify_statement,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)
W = Window(T0, T0 + timedelta(days=7))
BRANDS = ["air", "shop", "cafe"]


def x(i: int, src: str, dst: str, credited: str, day: int = 1) -> Exchange:
    return Exchange(f"x{i}", src, dst, 100, 50, Decimal(credited), Decimal(1), Decimal(0), T0 + timedelta(days=day))


def test_the_source_owes_the_destination_what_it_credited() -> None:
    [o] = obligations([x(1, "air", "shop", "450"), x(2, "air", "shop", "50")], W)
    assert (o.debtor, o.creditor, o.fen, o.exchanges) == ("air", "shop", 500, 2)


def test_the_fraction_of_a_fen_is_carried_into_the_next_window() -> None:
    [o] = obligations([x(1, "air", "shop", "10.75")], W)
    assert (o.fen, o.carried_fen) == (10, Decimal("0.75"))
    nxt = Window(W.end, W.end + timedelta(days=7))
    [o2] = obligations([x(2, "air", "shop", "0.25", day=8)], nxt, {("air", "shop"): o.carried_fen})
    assert (o2.fen, o2.carried_fen) == (1, 0)


NEXT = Window(W.end, W.end + timedelta(days=7))


def test_the_next_window_takes_the_fraction_from_the_previous_report() -> None:
    first = net_settlement(obligations([x(1, "air", "shop", "10.75"), x(2, "cafe", "air", "3")], W), W)
    carried = carried_from_report(settlement_json(first), NEXT)
    assert carried == {("air", "shop"): Decimal("0.75")}
    [o] = obligations([x(3, "air", "shop", "0.5", day=8)], NEXT, carried)
    assert (o.fen, o.carried_fen) == (1, Decimal("0.25"))


def test_a_report_of_another_window_cannot_be_carried_from() -> None:
    first = net_settlement(obligations([x(1, "air", "shop", "10.75")], W), W)
    later = Window(NEXT.end, NEXT.end + timedelta(days=7))
    with pytest.raises(ValueError, match="not where this window starts"):
        carried_from_report(settlement_json(first), later)
    with pytest.raises(ValueError, match="not a settlement report"):
        carried_from_report(settlement_json(net_settlement([])), NEXT)  # no window recorded


def test_exchanges_outside_the_window_wait_for_theirs() -> None:
    assert obligations([x(1, "air", "shop", "5", day=9)], W) == []


@given(st.lists(st.tuples(st.sampled_from(BRANDS), st.sampled_from(BRANDS), st.integers(0, 10**6)), max_size=40))
def test_no_money_appears_or_vanishes(flows: list[tuple[str, str, int]]) -> None:
    exchanges = [x(i, s, d, f"{c / 100:.2f}") for i, (s, d, c) in enumerate(flows) if s != d]
    obs = obligations(exchanges, W)
    total = sum((e.credited_fen for e in exchanges), Decimal(0))
    assert sum(o.fen for o in obs) + sum((o.carried_fen for o in obs), Decimal(0)) == total
    result = net_settlement(obs)
    assert sum(result.positions.values()) == 0
    paid: dict[str, int] = {}
    for p in result.payments:
        paid[p.payer] = paid.get(p.payer, 0) - p.amount
        paid[p.payee] = paid.get(p.payee, 0) + p.amount
    assert all(paid.get(b, 0) == v for b, v in result.positions.items())


def test_statements_from_both_sides_agree_when_both_saw_the_same_exchanges() -> None:
    both = [x(1, "air", "shop", "450"), x(2, "shop", "air", "30")]
    mine, theirs = statement("air", "shop", both, W), statement("shop", "air", both, W)
    assert reconcile(mine, theirs).agreed


def test_a_missing_or_different_exchange_is_a_dispute_naming_it() -> None:
    mine = statement("air", "shop", [x(1, "air", "shop", "450"), x(2, "air", "shop", "5")], W)
    theirs = statement("shop", "air", [x(1, "air", "shop", "451"), x(3, "air", "shop", "9")], W)
    r = reconcile(mine, theirs)
    assert not r.agreed
    assert (r.only_mine, r.only_theirs, r.amount_differs) == (("x2",), ("x3",), ("x1",))


def test_statements_are_signed_and_any_change_breaks_the_signature() -> None:
    signer = note.Signer.generate("air")
    s = statement("air", "shop", [x(1, "air", "shop", "450")], W)
    sig = sign_statement(s, signer)
    assert verify_statement(s, sig, signer.verifier())
    altered = statement("air", "shop", [x(1, "air", "shop", "451")], W)
    assert not verify_statement(altered, sig, signer.verifier())
    assert not verify_statement(s, sig, note.Signer.generate("air").verifier())


def test_the_reports_carry_the_payments_and_positions() -> None:
    result = net_settlement(obligations([x(1, "air", "shop", "300"), x(2, "shop", "cafe", "300")], W))
    rows = list(csv.DictReader(io.StringIO(settlement_csv(result))))
    assert [r for r in rows if r["record"] == "payment"] == [
        {"record": "payment", "payer": "air", "payee": "cafe", "brand": "", "amount_fen": "300"}
    ]
    assert json.loads(settlement_json(result))["positions_fen"] == {"air": -300, "cafe": 300, "shop": 0}


def test_liability_and_breakage_are_valued_at_the_point_value() -> None:
    row = liability("air", 10_000, 500, Decimal("4.5"))
    assert (row.liability_fen, row.breakage_fen) == (45_000, 2_250)
    with pytest.raises(ValueError, match="negative"):
        liability("air", -1, 0, Decimal(1))


def test_a_window_must_end_after_it_starts() -> None:
    with pytest.raises(ValueError, match="ends after"):
        Window(T0, T0)


def test_two_agreeing_statements_have_the_same_bilateral_digest() -> None:
    both = [x(1, "air", "shop", "450"), x(2, "shop", "air", "21")]
    mine, theirs = statement("air", "shop", both, W), statement("shop", "air", both, W)
    assert mine.digest != theirs.digest  # each side signs its own account
    assert bilateral_digest(mine) == bilateral_digest(theirs)  # what both post on chain


@given(st.sampled_from(["amount", "missing", "extra"]))
def test_any_disagreement_changes_the_bilateral_digest(kind: str) -> None:
    both = [x(1, "air", "shop", "450"), x(2, "shop", "air", "21")]
    other = {
        "amount": [x(1, "air", "shop", "451"), x(2, "shop", "air", "21")],
        "missing": [x(1, "air", "shop", "450")],
        "extra": [*both, x(3, "air", "shop", "1")],
    }[kind]
    assert bilateral_digest(statement("air", "shop", both, W)) != bilateral_digest(statement("shop", "air", other, W))
