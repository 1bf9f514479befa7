"""Multilateral netting: from bilateral obligations to net positions and the fewest payments that settle them.

Pure integer arithmetic (amounts in the smallest currency unit, e.g. fen); knows nothing of
loyalty. Net positions always sum to zero. Finding the fewest payments is the classic
"minimum cash flow" problem: with ``k`` parties of non-zero position, ``k - g`` payments suffice
and are necessary, where ``g`` is the largest number of disjoint groups whose positions each sum
to zero. :func:`settle` finds that partition exactly for up to ``EXACT_LIMIT`` parties (a dynamic
programme over subsets) and falls back to the greedy ``k - 1`` bound above it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

EXACT_LIMIT = 14


class NettingError(ValueError):
    """Obligations that cannot be netted: a negative amount, or positions that do not sum to zero."""


@dataclass(frozen=True, order=True)
class Payment:
    """One settlement payment."""

    payer: str
    payee: str
    amount: int


def net_positions(obligations: Iterable[tuple[str, str, int]]) -> dict[str, int]:
    """Each party's net position from ``(debtor, creditor, amount)``: positive receives, negative pays."""
    net: dict[str, int] = {}
    for debtor, creditor, amount in obligations:
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
            raise NettingError(f"an obligation must be a non-negative integer amount, not {amount!r}")
        if debtor == creditor:
            continue  # owing oneself nets to nothing
        net[debtor] = net.get(debtor, 0) - amount
        net[creditor] = net.get(creditor, 0) + amount
    return dict(sorted(net.items()))


def settle(positions: Mapping[str, int]) -> list[Payment]:
    """The fewest payments (exact up to ``EXACT_LIMIT`` non-zero parties) that bring every position to zero."""
    if sum(positions.values()) != 0:
        raise NettingError(f"positions sum to {sum(positions.values())}, not 0")
    parties = sorted(p for p, v in positions.items() if v != 0)
    if not parties:
        return []
    groups = _zero_sum_groups(parties, positions) if len(parties) <= EXACT_LIMIT else [parties]
    payments: list[Payment] = []
    for group in groups:
        payments += _greedy({p: positions[p] for p in group})
    return sorted(payments)


def _greedy(positions: dict[str, int]) -> list[Payment]:
    """Settle one zero-sum group in at most ``len - 1`` payments (largest debtor pays largest creditor)."""
    debtors = sorted(((-v, p) for p, v in positions.items() if v < 0), reverse=True)
    creditors = sorted(((v, p) for p, v in positions.items() if v > 0), reverse=True)
    out: list[Payment] = []
    i = j = 0
    owe = [d for d, _ in debtors]
    due = [c for c, _ in creditors]
    while i < len(debtors) and j < len(creditors):
        amount = min(owe[i], due[j])
        out.append(Payment(debtors[i][1], creditors[j][1], amount))
        owe[i] -= amount
        due[j] -= amount
        i += owe[i] == 0
        j += due[j] == 0
    return out


def _zero_sum_groups(parties: list[str], positions: Mapping[str, int]) -> list[list[str]]:
    """Partition ``parties`` into the most disjoint zero-sum groups (DP over subsets, O(2^k · k))."""
    k = len(parties)
    full = (1 << k) - 1
    total = [0] * (1 << k)
    for mask in range(1, 1 << k):
        low = mask & -mask
        total[mask] = total[mask ^ low] + positions[parties[low.bit_length() - 1]]
    # best[mask]: most zero-sum groups that exactly partition a zero-sum `mask`; built by adding
    # one party at a time, a group closing whenever the running subset sums to zero.
    best = [-1] * (1 << k)
    best[0] = 0
    for mask in range(1, 1 << k):
        m = mask
        top = -1
        while m:
            low = m & -m
            prev = best[mask ^ low]
            if prev > top:
                top = prev
            m ^= low
        best[mask] = top + (1 if total[mask] == 0 else 0)
    # walk back: peel off parties while the count holds, closing a group at each zero sum
    groups: list[list[str]] = []
    current: list[str] = []
    mask = full
    while mask:
        m = mask
        while m:
            low = m & -m
            if best[mask ^ low] + (1 if total[mask] == 0 else 0) == best[mask]:
                break
            m ^= low
        current.append(parties[low.bit_length() - 1])
        mask ^= low
        if total[mask] == 0:
            groups.append(current)
            current = []
    return groups
