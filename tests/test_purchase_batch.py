"""A till's batch of purchases: one call, one transaction, a result per purchase, each earning once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from api_fixtures import Api, open_api
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from node.cli.exchange import read_purchases
from node.cli.main import app
from node.core.processes import ServerProcess, free_port
from node.wallet.loyalty import points_for

MEMBERS = ("M-1", "M-2", "M-3")


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    a = open_api(tmp_path / "node", MEMBERS)
    yield a
    a.node.dispose()


def _post(api: Api, purchases: list[dict[str, object]]) -> dict:
    r = api.client.post("/v1/purchases:batch", json={"purchases": purchases}, headers=api.operator)
    assert r.status_code == 200, r.text
    return r.json()


def _balance(api: Api, ref: str) -> int:
    return api.client.get(f"/v1/members/{ref}/wallet", headers=api.operator).json()["balance"]


def test_each_purchase_of_a_batch_earns_its_points_with_a_result_in_order(api: Api) -> None:
    answer = _post(
        api, [{"member_ref": "M-1", "purchase_id": f"p-{i}", "amount_fen": 1000 * (i + 1)} for i in range(3)]
    )
    assert [(r["purchase_id"], r["status"], r["points"]) for r in answer["results"]] == [
        ("p-0", "earned", 10),
        ("p-1", "earned", 20),
        ("p-2", "earned", 30),
    ]
    assert _balance(api, "M-1") == 60


def test_a_batch_sent_again_credits_nothing_twice_and_answers_the_same(api: Api) -> None:
    batch = [{"member_ref": m, "purchase_id": f"p-{m}", "amount_fen": 5000} for m in MEMBERS]
    first, again = _post(api, batch), _post(api, batch)
    assert [r["entry_id"] for r in again["results"]] == [r["entry_id"] for r in first["results"]]
    assert [_balance(api, m) for m in MEMBERS] == [50, 50, 50]


def test_one_bad_purchase_never_refuses_the_others(api: Api) -> None:
    too_old = (datetime.now(UTC).date() - timedelta(days=366 * 11)).isoformat()
    answer = _post(
        api,
        [
            {"member_ref": "M-1", "purchase_id": "ok-1", "amount_fen": 1000},
            {"member_ref": "NOBODY", "purchase_id": "bad-1", "amount_fen": 1000},
            {"member_ref": "M-1", "purchase_id": "bad-2", "amount_fen": 50},
            {"member_ref": "M-1", "purchase_id": "bad-3", "amount_fen": 1000, "day": too_old},
            {"member_ref": "M-2", "purchase_id": "ok-2", "amount_fen": 2000},
        ],
    )
    assert [(r["status"], r["reason_code"]) for r in answer["results"]] == [
        ("earned", None),
        ("refused", "unknown_member"),
        ("refused", "too_small"),
        ("refused", "day_out_of_range"),
        ("earned", None),
    ]
    assert (answer["earned"], answer["refused"]) == (2, 3)


def test_a_purchase_id_repeated_in_one_batch_earns_once(api: Api) -> None:
    same = {"member_ref": "M-1", "purchase_id": "dup", "amount_fen": 1000}
    answer = _post(api, [same, same, {**same, "member_ref": "M-2"}])
    first, second, other = answer["results"]
    assert second["entry_id"] == first["entry_id"]
    assert other["reason_code"] == "idempotency_conflict"
    assert _balance(api, "M-1") == 10


def test_an_id_used_earlier_for_another_sale_is_a_conflict(api: Api) -> None:
    _post(api, [{"member_ref": "M-1", "purchase_id": "x", "amount_fen": 1000}])
    answer = _post(api, [{"member_ref": "M-1", "purchase_id": "x", "amount_fen": 9999}])
    assert answer["results"][0]["reason_code"] == "idempotency_conflict"


@pytest.mark.parametrize("count", [0, 1001])
def test_a_batch_holds_one_to_a_thousand_purchases(api: Api, count: int) -> None:
    batch = [{"member_ref": "M-1", "purchase_id": f"p-{i}", "amount_fen": 1000} for i in range(count)]
    r = api.client.post("/v1/purchases:batch", json={"purchases": batch}, headers=api.operator)
    assert r.status_code == 422


def test_a_full_batch_fits_the_bodys_limit(api: Api) -> None:
    batch = [
        {"member_ref": "M-1", "purchase_id": f"purchase-{i:010d}", "amount_fen": 123456, "day": "2026-12-01"}
        for i in range(1000)
    ]
    assert _post(api, batch)["earned"] == 1000


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    items=st.lists(
        st.tuples(st.sampled_from(MEMBERS), st.integers(0, 15), st.integers(1, 50_000)), min_size=1, max_size=40
    )
)
def test_points_credited_are_those_of_each_distinct_sale_once(api: Api, items: list[tuple[str, int, int]]) -> None:
    before = {m: _balance(api, m) for m in MEMBERS}
    run = datetime.now(UTC).timestamp()
    batch = [{"member_ref": m, "purchase_id": f"h{run}-{k}", "amount_fen": a} for m, k, a in items]
    answer = _post(api, batch)
    first: dict[str, tuple[str, int]] = {}  # an id's first sale that earns anything (a refused one records nothing)
    for m, k, a in items:
        if points_for(a, 1) >= 1:
            first.setdefault(f"h{run}-{k}", (m, a))
    expected = {m: 0 for m in MEMBERS}
    for m, a in first.values():
        expected[m] += points_for(a, 1)
    assert {m: _balance(api, m) - before[m] for m in MEMBERS} == expected
    assert len(answer["results"]) == len(items)


def test_the_csv_reader_names_a_bad_line_before_anything_is_sent(tmp_path: Path) -> None:
    f = tmp_path / "p.csv"
    f.write_text("member_ref,purchase_id,amount_fen\nM-1,a,1000\nM-1,b,12.50\n")
    with pytest.raises(ValueError, match="line 3: amount_fen must be a whole number"):
        read_purchases(f)


def test_the_csv_reader_needs_the_header_row(tmp_path: Path) -> None:
    f = tmp_path / "p.csv"
    f.write_text("M-1,a,1000\n")
    with pytest.raises(ValueError, match="header row lacks"):
        read_purchases(f)


def test_purchases_import_posts_a_csv_through_the_batch_endpoint(api: Api, tmp_path: Path) -> None:
    data_dir = api.node.settings.data_dir
    operator_key = api.operator["Authorization"].removeprefix("Bearer ")
    api.node.dispose()
    csv_file = tmp_path / "till.csv"
    csv_file.write_text(
        "member_ref,purchase_id,amount_fen,day\n"
        + "".join(f"M-{1 + i % 3},till-{i},{1000 + i},\n" for i in range(25))
        + "NOBODY,till-x,1000,\n"
    )
    server = ServerProcess(data_dir, free_port(), tmp_path / "serve.log").start()
    try:
        args = [
            "purchases",
            "import",
            str(csv_file),
            "--url",
            server.base_url,
            "--key",
            operator_key,
            "--batch",
            "10",
            "--rejects",
            str(tmp_path / "rejects.csv"),
        ]
        first = CliRunner().invoke(app, args)
        again = CliRunner().invoke(app, args)
    finally:
        server.stop()
    assert first.exit_code == 1  # one purchase refused
    assert "25 purchases recorded" in first.output
    assert "till-x,unknown_member" in (tmp_path / "rejects.csv").read_text()
    assert "25 purchases recorded" in again.output  # a re-run earns nothing twice
