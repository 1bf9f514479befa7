"""Both sides of an exchange in the database: transitions commit with their wallet movements, races resolve once."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text

from ledger import note
from ledger.storage import create_engine
from node.core.schema import upgrade
from node.exchange.protocol import DestinationState, ProtocolError, SourceEvent, SourceState
from node.exchange.quotes import make_quote
from node.exchange.store import DestinationSide, SourceSide
from node.peers.registry import Brand
from node.wallet.journal import WalletError
from node.wallet.store import WalletStore

TODAY = date(2026, 11, 22)
NOW = datetime(2026, 11, 22, 8, tzinfo=UTC)
M, N = "a" * 32, "b" * 32
KEYS = {n: note.Signer.generate(n) for n in ("air.example", "shop.example")}


def brand(node_id: str, value: str) -> Brand:
    return Brand(
        node_id=node_id,
        name=node_id,
        vkey=KEYS[node_id].verifier().to_vkey(),
        url=f"http://127.0.0.1:9/{node_id}",
        point_value_fen=Decimal(value),
        exchange_fee=Decimal("0.05"),
    )


AIR, SHOP = brand("air.example", "4.5"), brand("shop.example", "1")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def wallets(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
        upgrade(engine)
    else:
        engine = create_engine(request.getfixturevalue("pg_database"))
        upgrade(engine)
        with engine.begin() as conn:
            for t in (
                "exchange_in",
                "exchange_out",
                "wallet_allocation",
                "wallet_lot",
                "wallet_entry",
                "wallet_account",
            ):
                conn.execute(text(f"DELETE FROM {t}"))
    store = WalletStore(engine)
    store.earn(M, 1000, "purchase", TODAY - timedelta(days=10), TODAY + timedelta(days=100))
    yield store
    engine.dispose()


def quote(points: int = 400):  # type: ignore[no-untyped-def]
    return make_quote(points, AIR, SHOP, NOW)


def test_a_hold_takes_the_points_and_records_the_exchange_together(wallets: WalletStore) -> None:
    src = SourceSide(wallets)
    q = quote()
    out = src.hold(M, q, "sig", "link-1", TODAY)
    assert out.state is SourceState.HELD
    assert wallets.balance(M, TODAY) == 600
    assert src.hold(M, q, "sig", "link-1", TODAY) == out  # a retried hold takes nothing more
    assert wallets.balance(M, TODAY) == 600


def test_a_hold_beyond_the_balance_records_nothing(wallets: WalletStore) -> None:
    src = SourceSide(wallets)
    with pytest.raises(WalletError):
        src.hold(M, quote(2000), "sig", "link-1", TODAY)
    assert src.unfinished() == []
    assert wallets.balance(M, TODAY) == 1000


def test_a_credit_confirms_and_a_refusal_refunds_with_the_original_expiry(wallets: WalletStore) -> None:
    src = SourceSide(wallets)
    confirmed, refused = quote(), quote(300)
    src.hold(M, confirmed, "sig", "l", TODAY)
    src.hold(M, refused, "sig", "l", TODAY)
    assert src.apply(confirmed.quote_id, SourceEvent.CREDITED, "receipt").state is SourceState.CONFIRMED
    assert src.apply(refused.quote_id, SourceEvent.REFUSED).state is SourceState.CANCELLED
    assert wallets.balance(M, TODAY) == 600
    assert wallets.balance(M, TODAY + timedelta(days=101)) == 0  # the refund expires when the points would have
    assert src.apply(refused.quote_id, SourceEvent.REFUSED).actions[0].value == "nothing"  # no second refund
    assert wallets.balance(M, TODAY) == 600


def test_an_impossible_answer_changes_nothing(wallets: WalletStore) -> None:
    src = SourceSide(wallets)
    q = quote()
    src.hold(M, q, "sig", "l", TODAY)
    src.apply(q.quote_id, SourceEvent.REFUSED)
    with pytest.raises(ProtocolError):
        src.apply(q.quote_id, SourceEvent.CREDITED, "receipt")
    assert src.get(q.quote_id).state is SourceState.CANCELLED
    assert wallets.balance(M, TODAY) == 1000


def test_unfinished_exchanges_are_what_recovery_resumes(wallets: WalletStore) -> None:
    src = SourceSide(wallets)
    a, b = quote(100), quote(200)
    src.hold(M, a, "sig", "l", TODAY)
    src.hold(M, b, "sig", "l", TODAY)
    src.apply(a.quote_id, SourceEvent.TIMED_OUT)
    src.apply(b.quote_id, SourceEvent.CREDITED, "receipt")
    assert [(x.exchange_id, x.state) for x in src.unfinished()] == [(a.quote_id, SourceState.CANCELLING)]


def test_the_destination_credits_once(wallets: WalletStore) -> None:
    dst = DestinationSide(wallets)
    q = quote()
    for _ in range(3):
        assert dst.credit(q, N, True, TODAY, TODAY + timedelta(days=365)).answer is SourceEvent.CREDITED
    assert wallets.balance(N, TODAY) == q.points_received


def test_a_tombstone_stops_a_late_credit(wallets: WalletStore) -> None:
    dst = DestinationSide(wallets)
    q = quote()
    assert dst.cancel(q.quote_id, "air.example").answer is SourceEvent.TOMBSTONED
    assert dst.credit(q, N, True, TODAY, TODAY + timedelta(days=365)).answer is SourceEvent.TOMBSTONED
    assert wallets.balance(N, TODAY) == 0
    assert dst.state(q.quote_id) is DestinationState.TOMBSTONED


def test_a_refused_credit_is_refused_for_good(wallets: WalletStore) -> None:
    dst = DestinationSide(wallets)
    q = quote()
    assert dst.credit(q, N, False, TODAY, TODAY + timedelta(days=365)).answer is SourceEvent.REFUSED
    assert dst.credit(q, N, True, TODAY, TODAY + timedelta(days=365)).answer is SourceEvent.TOMBSTONED


def test_a_credit_and_a_cancel_racing_resolve_to_one_outcome(wallets: WalletStore) -> None:
    dst = DestinationSide(wallets)

    def race(q, answers: list[SourceEvent]) -> None:  # type: ignore[no-untyped-def]
        threads = [
            threading.Thread(
                target=lambda: answers.append(dst.credit(q, N, True, TODAY, TODAY + timedelta(days=9)).answer)
            ),
            threading.Thread(target=lambda: answers.append(dst.cancel(q.quote_id, "air.example").answer)),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)

    for _ in range(10):
        answers: list[SourceEvent] = []
        race(quote(10), answers)
        assert len(answers) == 2
        assert len(set(answers)) == 1, answers  # both callers hear the same outcome
    credited = wallets.balance(N, TODAY)
    assert credited % quote(10).points_received == 0
