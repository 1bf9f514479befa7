"""Business input the node refuses with a reason: purchases earn once per brand, on sane days, from amounts that
are JSON integers; dates (purchase days, churn windows, birth dates) stay where date arithmetic cannot overflow."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from api_fixtures import Api, open_api
from sqlalchemy import insert, select, text

from ledger.storage import create_engine
from node.core.schema import upgrade
from node.learning.rows import ChurnWindow, churn_window
from node.wallet.journal import WalletError
from node.wallet.purchases import PurchaseRow, check_business_day
from node.wallet.store import WalletAccount, WalletEntryRow, WalletLotRow

TODAY = date(2026, 12, 1)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    opened = open_api(tmp_path / "n", ("M-1", "M-2"))
    yield opened
    opened.node.dispose()


def _buy(api: Api, member: str, purchase_id: str, amount: object, **extra: object):  # type: ignore[no-untyped-def]
    body = {"purchase_id": purchase_id, "amount_fen": amount, **extra}
    return api.client.post(f"/v1/members/{member}/purchases", json=body, headers=api.operator)


def _balance(api: Api, member: str) -> int:
    return int(api.client.get(f"/v1/members/{member}/wallet", headers=api.operator).json()["balance"])


# --- business days ---------------------------------------------------------------------------------


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01", "2000-01-01"])
def test_a_purchase_dated_outside_the_sane_window_is_refused_with_its_reason(api: Api, day: str) -> None:
    r = _buy(api, "M-1", "p-far", 10_000, day=day)
    assert r.status_code == 422, r.text
    assert r.json()["reason_code"] == "day_out_of_range"
    assert _balance(api, "M-1") == 0


def test_a_purchase_of_yesterday_or_tomorrow_earns() -> None:
    for day in (TODAY - timedelta(days=1), TODAY, TODAY + timedelta(days=1), TODAY - timedelta(days=3650)):
        check_business_day(day, TODAY)


@pytest.mark.parametrize("day", [TODAY + timedelta(days=2), TODAY - timedelta(days=3700), date.max, date.min])
def test_a_day_outside_the_window_is_day_out_of_range(day: date) -> None:
    with pytest.raises(WalletError) as info:
        check_business_day(day, TODAY)
    assert info.value.reason == "day_out_of_range"


@pytest.mark.parametrize(
    ("cutoff", "end"), [(None, date(1970, 2, 1)), (date(1, 1, 1), date(2026, 1, 1)), (None, date(9999, 12, 31))]
)
def test_a_churn_window_out_of_the_calendars_reach_is_refused_not_overflowed(cutoff: date | None, end: date) -> None:
    with pytest.raises(ValueError, match="churn window lies between"):
        churn_window(cutoff, end, TODAY)


def test_a_churn_window_defaults_to_180_days_up_to_today() -> None:
    assert churn_window(None, None, TODAY) == ChurnWindow(TODAY - timedelta(days=180), TODAY)


# --- strict amounts --------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", ["100", 100.0, True, "1e3"])
def test_an_amount_that_is_not_a_json_integer_is_refused(api: Api, amount: object) -> None:
    r = _buy(api, "M-1", "p-loose", amount)
    assert r.status_code == 422, r.text
    assert _balance(api, "M-1") == 0


@pytest.mark.parametrize("points", ["10", 10.0, False])
def test_points_to_exchange_that_are_not_a_json_integer_are_refused(api: Api, points: object) -> None:
    body = {"to": "b.example", "points": points}
    r = api.client.post("/v1/me/exchange-quotes", json=body, headers=api.members["M-1"])
    assert r.status_code == 422, r.text
    assert "errors" in r.json()  # refused by the request's types, before any quote is made


# --- once per brand ----------------------------------------------------------------------------------


def test_a_retried_purchase_gets_the_first_answer_and_earns_once(api: Api) -> None:
    first, again = _buy(api, "M-1", "till-7:0042", 12_345), _buy(api, "M-1", "till-7:0042", 12_345)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert _balance(api, "M-1") == 123


def test_a_purchase_id_reused_with_another_amount_is_a_conflict(api: Api) -> None:
    assert _buy(api, "M-1", "till-7:0043", 10_000).status_code == 201
    r = _buy(api, "M-1", "till-7:0043", 99_900)
    assert r.status_code == 409
    assert r.json()["reason_code"] == "idempotency_conflict"
    assert _balance(api, "M-1") == 100


def test_a_purchase_id_is_unique_across_the_brands_members(api: Api) -> None:
    assert _buy(api, "M-1", "till-7:0044", 10_000).status_code == 201
    r = _buy(api, "M-2", "till-7:0044", 10_000)
    assert r.status_code == 409
    assert r.json()["reason_code"] == "idempotency_conflict"
    assert _balance(api, "M-2") == 0


# --- the migration ----------------------------------------------------------------------------------


def test_the_migration_records_purchases_already_in_the_journal_once_per_id(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'node.db'}")
    upgrade(engine, "0008")
    now, day = datetime.now(UTC), date(2026, 11, 1)
    # entry ids are random: the later use of A has the smaller id, and must not win
    entries = [("e9", "m1", "purchase:A"), ("e2", "m2", "purchase:A"), ("e3", "m1", "purchase:B"), ("e4", "m1", None)]
    with engine.begin() as conn:
        conn.execute(insert(WalletAccount.__table__), [{"member": m, "opened_at": now} for m in ("m1", "m2")])
        for i, (entry_id, member, ref) in enumerate(entries):
            at = now + timedelta(minutes=i)  # recorded in list order
            conn.execute(
                insert(WalletEntryRow.__table__).values(
                    entry_id=entry_id, member=member, kind="earn", reason="purchase", points=5, at=at, ref=ref
                )
            )
            conn.execute(
                insert(WalletLotRow.__table__).values(
                    lot_id=f"l{entry_id}", member=member, entry_id=entry_id, points=5, earned_on=day, expires_on=day
                )
            )
    upgrade(engine)
    t = PurchaseRow.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.purchase_id, t.c.member, t.c.entry_id, t.c.amount_fen, t.c.day)).all()
        assert conn.execute(text("SELECT count(*) FROM purchase")).scalar_one() == 2
    assert sorted(tuple(r) for r in rows) == [("A", "m1", "e9", None, day), ("B", "m1", "e3", None, day)]
    engine.dispose()


def test_federate_run_refuses_a_window_beyond_the_calendar_with_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from node.cli.main import app

    r = CliRunner().invoke(
        app, ["federate", "run", "--node", str(tmp_path / "a"), "--node", str(tmp_path / "b"), "--run", "x",
              "--horizon-end", "0001-03-01"],
    )  # fmt: skip
    assert r.exit_code == 2, r.output
    assert "churn window lies between" in r.output
    assert "Traceback" not in r.output


@pytest.mark.parametrize("born", ["9999-12-31", "2100-01-01", "0001-01-01", "1850-06-01"])
def test_a_birth_date_no_member_can_have_is_refused_with_its_reason(api: Api, born: str) -> None:
    r = api.client.post("/v1/members", json={"member_ref": "NEW", "birth_date": born}, headers=api.operator)
    assert r.status_code == 422, r.text
    assert r.json()["reason_code"] == "birth_date_out_of_range"


def test_a_correction_to_a_birth_date_in_the_future_is_refused_and_changes_nothing(api: Api) -> None:
    r = api.client.post("/v1/me/corrections", json={"birth_date": "2999-01-01"}, headers=api.members["M-1"])
    assert r.status_code == 422, r.text
    assert r.json()["reason_code"] == "birth_date_out_of_range"
    assert api.node.consent.store.member("M-1").birth_date is None  # type: ignore[union-attr]


def test_the_same_purchase_id_on_another_stated_day_is_a_conflict(api: Api) -> None:
    today = datetime.now(UTC).date()
    assert _buy(api, "M-1", "till-7:0045", 10_000, day=str(today)).status_code == 201
    r = _buy(api, "M-1", "till-7:0045", 10_000, day=str(today - timedelta(days=1)))
    assert (r.status_code, r.json()["reason_code"]) == (409, "idempotency_conflict")


def test_a_retry_that_names_no_day_is_the_same_sale_whatever_day_it_arrives(api: Api) -> None:
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    first = _buy(api, "M-1", "till-7:0046", 10_000, day=str(yesterday))
    assert _buy(api, "M-1", "till-7:0046", 10_000).json() == first.json()


def test_a_members_purchases_are_in_their_access_export_and_go_with_their_erasure(api: Api) -> None:
    assert _buy(api, "M-1", "till-7:0047", 10_000).status_code == 201
    data = api.client.post("/v1/me/access-requests", headers=api.members["M-1"]).json()["data"]
    assert [p["purchase_id"] for p in data["purchases"]] == ["till-7:0047"]
    assert api.client.post("/v1/me/erasure", headers=api.members["M-1"]).status_code < 300
    with api.node.store.engine.connect() as conn:
        assert conn.execute(select(PurchaseRow.__table__.c.purchase_id)).scalars().all() == []
