"""Wallets: lots, oldest-expiring first, balances derived from the journal, never overdrawn under concurrency."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text

from ledger.storage import create_engine
from node.core.schema import upgrade
from node.wallet import journal as wallet
from node.wallet.journal import Kind, Lot, WalletError
from node.wallet.store import WalletStore

D0 = date(2026, 1, 1)
M = "a" * 32


def lot(lot_id: str, points: int, expires: int, earned: int = 0) -> Lot:
    return Lot(lot_id, points, D0 + timedelta(days=earned), D0 + timedelta(days=expires))


# --- pure ----------------------------------------------------------------------------------


def test_redemption_takes_the_oldest_expiring_points_first() -> None:
    lots = [lot("late", 100, 300), lot("soon", 50, 30), lot("mid", 70, 100)]
    assert wallet.take(lots, [], 80, D0) == (("soon", 50), ("mid", 30))


def test_expired_lots_cannot_be_spent() -> None:
    lots = [lot("old", 100, 10), lot("new", 20, 300)]
    with pytest.raises(WalletError) as info:
        wallet.take(lots, [], 50, D0 + timedelta(days=11))
    assert info.value.reason == "insufficient_points"


def test_expiry_takes_only_what_is_left_of_lots_past_their_day() -> None:
    lots = [lot("old", 100, 10), lot("new", 20, 300)]
    assert wallet.expiring(lots, [("old", 30)], D0 + timedelta(days=11)) == (("old", 70),)
    assert wallet.expiring(lots, [], D0 + timedelta(days=10)) == ()  # the expiry day itself still counts


@pytest.mark.parametrize("points", [0, -1, True, 2.5, 10**13])
def test_a_zero_negative_fractional_or_absurd_amount_is_refused(points: object) -> None:
    with pytest.raises(WalletError) as info:
        wallet.take([lot("x", 10, 10)], [], points, D0)  # type: ignore[arg-type]
    assert info.value.reason == "bad_amount"


@given(
    st.lists(st.tuples(st.integers(1, 1000), st.integers(1, 400)), min_size=1, max_size=12),
    st.lists(st.integers(1, 600), max_size=20),
    st.integers(0, 400),
)
def test_points_are_conserved_and_never_overdrawn(
    earns: list[tuple[int, int]], redemptions: list[int], day: int
) -> None:
    lots = [lot(f"l{i}", p, e) for i, (p, e) in enumerate(earns)]
    today = D0 + timedelta(days=day)
    taken: list[tuple[str, int]] = []
    for points in redemptions:
        before = wallet.balance(lots, taken, today)
        try:
            taken += wallet.take(lots, taken, points, today)
        except WalletError:
            assert before < points
            continue
        assert wallet.balance(lots, taken, today) == before - points
    taken += wallet.expiring(lots, taken, today)
    left = wallet.remaining(lots, taken)
    assert all(v >= 0 for v in left.values())
    assert sum(p for p, _ in earns) == sum(left.values()) + sum(n for _, n in taken)


# --- store ---------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'w.db'}")
        upgrade(engine)
    else:
        engine = create_engine(request.getfixturevalue("pg_database"))
        upgrade(engine)
        with engine.begin() as conn:  # the shared test database: start from empty wallets
            conn.execute(text("DELETE FROM wallet_allocation; DELETE FROM wallet_lot"))
            conn.execute(text("DELETE FROM wallet_entry; DELETE FROM wallet_account"))
    yield WalletStore(engine)
    engine.dispose()


def test_the_balance_is_derived_from_the_journal(store: WalletStore) -> None:
    store.earn(M, 100, "purchase", D0, D0 + timedelta(days=365))
    store.redeem(M, 30, "reward", D0)
    assert store.balance(M, D0) == 70
    assert [(e.kind, e.points) for e in store.journal(M)] == [(Kind.EARN, 100), (Kind.REDEEM, -30)]


def test_an_entry_with_a_reference_is_recorded_once(store: WalletStore) -> None:
    first = store.earn(M, 100, "purchase", D0, D0 + timedelta(days=365), ref="order-1")
    again = store.earn(M, 100, "purchase", D0, D0 + timedelta(days=365), ref="order-1")
    assert again.entry_id == first.entry_id
    assert store.balance(M, D0) == 100


def test_expiry_is_a_journal_entry_with_its_reason(store: WalletStore) -> None:
    store.earn(M, 100, "purchase", D0, D0 + timedelta(days=10))
    entry = store.expire(M, D0 + timedelta(days=11))
    assert entry is not None
    assert (entry.kind, entry.reason, entry.points) == (Kind.EXPIRE, "expiry", -100)
    assert store.expire(M, D0 + timedelta(days=12)) is None


def test_a_downward_adjustment_takes_like_a_redemption_and_cannot_overdraw(store: WalletStore) -> None:
    store.earn(M, 10, "purchase", D0, D0 + timedelta(days=30))
    with pytest.raises(WalletError, match="usable points"):
        store.adjust(M, -11, "correction", D0)
    assert store.adjust(M, -10, "fraud_reversal", D0).points == -10


def test_an_unknown_reason_code_is_refused(store: WalletStore) -> None:
    with pytest.raises(WalletError) as info:
        store.earn(M, 10, "because", D0, D0 + timedelta(days=30))
    assert info.value.reason == "bad_reason"


def test_concurrent_redemptions_never_take_a_wallet_below_zero(store: WalletStore) -> None:
    store.earn(M, 100, "purchase", D0, D0 + timedelta(days=365))
    outcomes: list[str] = []
    lock = threading.Lock()

    def redeem() -> None:
        try:
            store.redeem(M, 10, "reward", D0)
            result = "ok"
        except WalletError as exc:
            result = exc.reason
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=redeem) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["insufficient_points"] * 6 + ["ok"] * 10
    assert store.balance(M, D0) == 0
    assert sum(e.points for e in store.journal(M)) == 0


def test_concurrent_first_movements_open_one_account(store: WalletStore) -> None:
    threads = [
        threading.Thread(target=store.earn, args=(f"{i:032x}", 5, "purchase", D0, D0 + timedelta(days=9)))
        for i in range(8)
    ] + [threading.Thread(target=store.earn, args=(M, 5, "purchase", D0, D0 + timedelta(days=9))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert store.balance(M, D0) == 40


def test_journal_times_are_utc(store: WalletStore) -> None:
    entry = store.earn(M, 1, "purchase", D0, D0 + timedelta(days=1))
    assert entry.at.utcoffset() == timedelta(0)
    assert isinstance(store.journal(M)[0].at, datetime)
