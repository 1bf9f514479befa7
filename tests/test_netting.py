"""Multilateral netting: positions sum to zero, payments settle them exactly, and they are the fewest."""

from __future__ import annotations

from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.netting import NettingError, Payment, net_positions, settle

BRANDS = [f"b{i}" for i in range(8)]
obligation = st.tuples(st.sampled_from(BRANDS), st.sampled_from(BRANDS), st.integers(min_value=0, max_value=10**9))


def _apply(positions: dict[str, int], payments: list[Payment]) -> dict[str, int]:
    after = dict(positions)
    for p in payments:
        after[p.payer] += p.amount
        after[p.payee] -= p.amount
    return after


def _max_zero_groups(values: list[int]) -> int:
    """Brute force: the most disjoint zero-sum groups partitioning ``values`` (small inputs only)."""
    if not values:
        return 0
    first, rest = values[0], list(range(1, len(values)))
    best = 0
    for r in range(len(rest) + 1):
        for combo in combinations(rest, r):
            if first + sum(values[i] for i in combo) == 0:
                remaining = [values[i] for i in rest if i not in combo]
                best = max(best, 1 + _max_zero_groups(remaining))
    return best


def test_a_simple_triangle_nets_to_nothing() -> None:
    positions = net_positions([("air", "cafe", 100), ("cafe", "shop", 100), ("shop", "air", 100)])
    assert positions == {"air": 0, "cafe": 0, "shop": 0}
    assert settle(positions) == []


def test_a_chain_settles_in_one_payment() -> None:
    positions = net_positions([("air", "cafe", 70), ("cafe", "shop", 70)])
    assert settle(positions) == [Payment("air", "shop", 70)]


@given(st.lists(obligation, max_size=40))
def test_net_positions_always_sum_to_zero(obligations: list[tuple[str, str, int]]) -> None:
    assert sum(net_positions(obligations).values()) == 0


@given(st.lists(obligation, max_size=40))
def test_the_payments_settle_every_position_exactly_with_positive_amounts(
    obligations: list[tuple[str, str, int]],
) -> None:
    positions = net_positions(obligations)
    payments = settle(positions)
    assert all(v == 0 for v in _apply(positions, payments).values())
    assert all(p.amount > 0 and p.payer != p.payee for p in payments)


@settings(max_examples=150)
@given(st.lists(st.integers(min_value=-50, max_value=50), min_size=1, max_size=7))
def test_the_number_of_payments_is_the_minimum(values: list[int]) -> None:
    values = [*values, -sum(values)]
    positions = {f"p{i}": v for i, v in enumerate(values)}
    nonzero = [v for v in values if v]
    assert len(settle(positions)) == len(nonzero) - _max_zero_groups(nonzero)


def test_many_parties_fall_back_to_at_most_one_fewer_payment_than_parties() -> None:
    positions = {f"p{i}": (i + 1) * (1 if i % 2 else -1) for i in range(30)}
    positions["p29"] -= sum(positions.values())
    payments = settle(positions)
    assert all(v == 0 for v in _apply(positions, payments).values())
    assert len(payments) <= len([v for v in positions.values() if v]) - 1


@pytest.mark.parametrize("amount", [-1, 1.5, True])
def test_a_negative_or_non_integer_obligation_is_refused(amount: object) -> None:
    with pytest.raises(NettingError):
        net_positions([("a", "b", amount)])  # type: ignore[list-item]


def test_positions_that_do_not_sum_to_zero_are_refused() -> None:
    with pytest.raises(NettingError, match="sum to 1"):
        settle({"a": 1})
