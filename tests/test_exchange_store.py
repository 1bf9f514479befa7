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
from node.exchange.batches import CancelItem, CreditItem, apply_outgoing, settle_incoming
from node.exchange.protocol import DestinationState, ProtocolError, SourceEvent, SourceState, Step
from node.exchange.quotes import Quote, make_quote
from node.exchange.store import DestinationSide, Hold, Outgoing, SourceSide
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


def apply(src: SourceSide, exchange_id: str, event: SourceEvent, receipt: str | None = None) -> Step:
    """One exchange's answer recorded (a batch of one)."""
    return apply_outgoing(src, [(src.get(exchange_id), event, receipt)])[0][0]


def credit(dst: DestinationSide, q: Quote, refused: str | None = None) -> SourceEvent:
    """One credit request answered (a batch of one) for member N."""
    item = CreditItem(q, N, "sig", "l", refused)
    return settle_incoming(dst, [item], TODAY, TODAY + timedelta(days=365))[0].answer


def cancel(dst: DestinationSide, exchange_id: str) -> SourceEvent:
    """One cancel request answered (a batch of one)."""
    return settle_incoming(dst, [CancelItem(exchange_id, "air.example")], TODAY, TODAY)[0].answer


def test_a_credit_confirms_and_a_refusal_refunds_with_the_original_expiry(wallets: WalletStore) -> None:
    src = SourceSide(wallets)
    confirmed, refused = quote(), quote(300)
    src.hold(M, confirmed, "sig", "l", TODAY)
    src.hold(M, refused, "sig", "l", TODAY)
    assert apply(src, confirmed.quote_id, SourceEvent.CREDITED, "receipt").state is SourceState.CONFIRMED
    assert apply(src, refused.quote_id, SourceEvent.REFUSED).state is SourceState.CANCELLED
    assert wallets.balance(M, TODAY) == 600
    assert wallets.balance(M, TODAY + timedelta(days=101)) == 0  # the refund expires when the points would have
    assert apply(src, refused.quote_id, SourceEvent.REFUSED).actions[0].value == "nothing"  # no second refund
    assert wallets.balance(M, TODAY) == 600


def test_an_impossible_answer_changes_nothing(wallets: WalletStore) -> None:
    src = SourceSide(wallets)
    q = quote()
    src.hold(M, q, "sig", "l", TODAY)
    apply(src, q.quote_id, SourceEvent.REFUSED)
    with pytest.raises(ProtocolError):
        apply(src, q.quote_id, SourceEvent.CREDITED, "receipt")
    assert src.get(q.quote_id).state is SourceState.CANCELLED
    assert wallets.balance(M, TODAY) == 1000


def test_unfinished_exchanges_are_what_recovery_resumes(wallets: WalletStore) -> None:
    src = SourceSide(wallets)
    a, b = quote(100), quote(200)
    src.hold(M, a, "sig", "l", TODAY)
    src.hold(M, b, "sig", "l", TODAY)
    apply(src, a.quote_id, SourceEvent.TIMED_OUT)
    apply(src, b.quote_id, SourceEvent.CREDITED, "receipt")
    assert [(x.exchange_id, x.state) for x in src.unfinished()] == [(a.quote_id, SourceState.CANCELLING)]


def test_the_destination_credits_once(wallets: WalletStore) -> None:
    dst = DestinationSide(wallets)
    q = quote()
    for _ in range(3):
        assert credit(dst, q) is SourceEvent.CREDITED
    assert wallets.balance(N, TODAY) == q.points_received


def test_a_tombstone_stops_a_late_credit(wallets: WalletStore) -> None:
    dst = DestinationSide(wallets)
    q = quote()
    assert cancel(dst, q.quote_id) is SourceEvent.TOMBSTONED
    assert credit(dst, q) is SourceEvent.TOMBSTONED
    assert wallets.balance(N, TODAY) == 0
    assert dst.state(q.quote_id) is DestinationState.TOMBSTONED


def test_a_refused_credit_is_refused_for_good(wallets: WalletStore) -> None:
    dst = DestinationSide(wallets)
    q = quote()
    assert credit(dst, q, refused="no_consent") is SourceEvent.REFUSED
    assert credit(dst, q) is SourceEvent.TOMBSTONED


def test_a_credit_and_a_cancel_racing_resolve_to_one_outcome(wallets: WalletStore) -> None:
    dst = DestinationSide(wallets)

    def race(q, answers: list[SourceEvent]) -> None:  # type: ignore[no-untyped-def]
        threads = [
            threading.Thread(target=lambda: answers.append(credit(dst, q))),
            threading.Thread(target=lambda: answers.append(cancel(dst, q.quote_id))),
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


def test_a_batch_settles_every_item_on_its_own_in_one_transaction(wallets: WalletStore) -> None:
    dst = DestinationSide(wallets)
    ok, refused, cancelled = quote(100), quote(200), quote(300)
    items = [
        CreditItem(ok, N, "sig", "l"),
        CreditItem(refused, N, "sig", "l", "no_consent"),
        CancelItem(cancelled.quote_id, "air.example"),
        CreditItem(ok, N, "sig", "l"),  # the same exchange again: answered as a retry, credited once
    ]
    answers = settle_incoming(dst, items, TODAY, TODAY + timedelta(days=365))
    assert [a.answer for a in answers] == [
        SourceEvent.CREDITED,
        SourceEvent.REFUSED,
        SourceEvent.TOMBSTONED,
        SourceEvent.CREDITED,
    ]
    assert wallets.balance(N, TODAY) == ok.points_received
    assert dst.state(refused.quote_id) is DestinationState.TOMBSTONED
    assert dst.state(cancelled.quote_id) is DestinationState.TOMBSTONED


def test_a_batch_of_answers_confirms_and_refunds_together(wallets: WalletStore) -> None:
    src = SourceSide(wallets)
    a, b, c = quote(100), quote(200), quote(300)
    outs = [src.hold(M, q, "sig", "l", TODAY) for q in (a, b, c)]
    events = [(SourceEvent.CREDITED, "receipt"), (SourceEvent.REFUSED, None), (SourceEvent.TIMED_OUT, None)]
    applied = apply_outgoing(src, [(o, e, r) for o, (e, r) in zip(outs, events, strict=True)])
    assert [o.state for _, o in applied] == [SourceState.CONFIRMED, SourceState.CANCELLED, SourceState.CANCELLING]
    assert wallets.balance(M, TODAY) == 1000 - 100 - 300  # b refunded, c still held
    assert src.get(a.quote_id).destination_sig == "receipt"


def test_a_batch_with_an_impossible_answer_records_none_of_it(wallets: WalletStore) -> None:
    src = SourceSide(wallets)
    a, b = quote(100), quote(200)
    outs = [src.hold(M, q, "sig", "l", TODAY) for q in (a, b)]
    apply(src, b.quote_id, SourceEvent.REFUSED)
    with pytest.raises(ProtocolError):
        apply_outgoing(src, [(outs[0], SourceEvent.CREDITED, "receipt"), (outs[1], SourceEvent.CREDITED, "receipt")])
    assert src.get(a.quote_id).state is SourceState.HELD


def test_holds_commit_together_and_one_short_of_points_is_refused_alone(wallets: WalletStore) -> None:
    src = SourceSide(wallets)
    small, too_big, again = quote(100), quote(5000), quote(200)
    held = src.hold_many([Hold(M, small, "sig", "l"), Hold(M, too_big, "sig", "l"), Hold(M, again, "sig", "l")], TODAY)
    assert isinstance(held[0], Outgoing)
    assert isinstance(held[2], Outgoing)
    assert isinstance(held[1], WalletError)
    assert held[1].reason == "insufficient_points"
    assert wallets.balance(M, TODAY) == 1000 - 300
    assert [o.exchange_id for o in src.unfinished()] == [small.quote_id, again.quote_id]
