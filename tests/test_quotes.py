"""Value-conserving quotes and the alliance registry: nothing lost to rounding, nothing accepted unsigned."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from ledger import note
from node.exchange.quotes import MAX_POINTS, Quote, QuoteError, accept_quote, make_quote, sign_quote
from node.peers.registry import Brand, Registry, UnknownBrandError, load_registry

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
SIGNERS = {n: note.Signer.generate(n) for n in ("air.example", "shop.example", "cafe.example")}


def brand(node_id: str, value: str, fee: str = "0") -> Brand:
    return Brand(
        node_id=node_id,
        name=node_id.split(".")[0].title(),
        vkey=SIGNERS[node_id].verifier().to_vkey(),
        url=f"http://127.0.0.1:9/{node_id}",
        point_value_fen=Decimal(value),
        exchange_fee=Decimal(fee),
    )


AIR, SHOP = brand("air.example", "4.5", "0.05"), brand("shop.example", "1")
values = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(10_000), places=4)
fees = st.decimals(min_value=Decimal(0), max_value=Decimal("0.9999"), places=4)


def test_a_thousand_miles_buy_four_thousand_two_hundred_seventy_five_points() -> None:
    q = make_quote(1000, AIR, SHOP, T0)
    # 1000 × 4.5 = 4500 fen; fee 5 % = 225; 4275 fen at 1 fen per point
    assert (q.value_fen, q.fee_fen, q.points_received, q.remainder_fen) == (4500, 225, 4275, 0)


def test_the_rounding_remainder_is_recorded_not_lost() -> None:
    q = make_quote(7, brand("air.example", "1"), brand("shop.example", "3"), T0)
    assert (q.points_received, q.credited_fen, q.remainder_fen) == (2, 6, 1)


@given(st.integers(min_value=1, max_value=10**9), values, values, fees)
def test_value_is_conserved_to_the_last_digit(points: int, va: Decimal, vb: Decimal, fee: Decimal) -> None:
    a, b = brand("air.example", str(va), str(fee)), brand("shop.example", str(vb))
    if points * va * (1 - fee) < vb:  # worth less than one destination point
        with pytest.raises(QuoteError, match="worth less"):
            make_quote(points, a, b, T0)
        return
    q = make_quote(points, a, b, T0)
    assert q.value_fen == q.fee_fen + q.credited_fen + q.remainder_fen
    assert 0 <= q.remainder_fen < b.point_value_fen
    assert q.credited_fen == q.points_received * b.point_value_fen


@pytest.mark.parametrize("points", [0, -5, MAX_POINTS + 1, True, 1.5])
def test_a_negative_zero_fractional_or_absurd_amount_is_refused(points: object) -> None:
    with pytest.raises(QuoteError) as info:
        make_quote(points, AIR, SHOP, T0)  # type: ignore[arg-type]
    assert info.value.reason == "bad_amount"


def test_a_signed_quote_is_accepted_until_it_expires() -> None:
    q = make_quote(1000, AIR, SHOP, T0)
    sig = sign_quote(q, SIGNERS["air.example"])
    accept_quote(q, sig, AIR, SHOP, T0 + timedelta(seconds=59))
    with pytest.raises(QuoteError, match="expired"):
        accept_quote(q, sig, AIR, SHOP, T0 + timedelta(seconds=60))


def test_a_quote_signed_by_another_key_is_refused() -> None:
    q = make_quote(1000, AIR, SHOP, T0)
    forged = note.b64encode(SIGNERS["cafe.example"].sign_raw(b"alliance-quote/1\n" + q.canonical()))
    with pytest.raises(QuoteError) as info:
        accept_quote(q, forged, AIR, SHOP, T0)
    assert info.value.reason == "bad_signature"


def test_a_quote_with_an_altered_amount_is_refused() -> None:
    q = make_quote(1000, AIR, SHOP, T0)
    sig = sign_quote(q, SIGNERS["air.example"])
    richer = dataclasses.replace(q, points_received=q.points_received + 1)
    with pytest.raises(QuoteError, match="not signed"):
        accept_quote(richer, sig, AIR, SHOP, T0)


def test_a_quote_made_with_old_rates_is_refused() -> None:
    q = make_quote(1000, AIR, SHOP, T0)
    sig = sign_quote(q, SIGNERS["air.example"])
    with pytest.raises(QuoteError) as info:
        accept_quote(q, sig, brand("air.example", "4.6", "0.05"), SHOP, T0)
    assert info.value.reason == "stale_rates"


def test_a_quote_survives_the_wire_exactly() -> None:
    q = make_quote(1234, AIR, SHOP, T0)
    assert Quote.from_json(q.to_json()) == q
    with pytest.raises(QuoteError, match="not a quote"):
        Quote.from_json({k: v for k, v in q.to_json().items() if k != "fee_fen"})


def test_only_the_source_signs_its_quotes() -> None:
    with pytest.raises(QuoteError, match="cannot sign"):
        sign_quote(make_quote(10, AIR, SHOP, T0), SIGNERS["shop.example"])


# --- registry ------------------------------------------------------------------------------


def _registry_toml(tmp_path: Path, brands: list[Brand]) -> Path:
    lines = ['alliance = "Test alliance"', "version = 3", ""]
    for b in brands:
        lines += [
            "[[brands]]",
            f'node_id = "{b.node_id}"',
            f'name = "{b.name}"',
            f'vkey = "{b.vkey}"',
            f'url = "{b.url}"',
            f'point_value_fen = "{b.point_value_fen}"',
            f'exchange_fee = "{b.exchange_fee}"',
            "",
        ]
    path = tmp_path / "alliance.toml"
    path.write_text("\n".join(lines))
    return path


def test_the_registry_loads_every_brand(tmp_path: Path) -> None:
    registry = load_registry(_registry_toml(tmp_path, [AIR, SHOP]))
    assert registry.brand("air.example").point_value_fen == Decimal("4.5")


def test_a_node_absent_from_the_registry_is_refused() -> None:
    registry = Registry(alliance="A", version=1, brands=(AIR, SHOP))
    with pytest.raises(UnknownBrandError, match="not in the alliance registry"):
        registry.brand("evil.example")


def test_a_brand_listed_twice_is_rejected() -> None:
    with pytest.raises(ValidationError, match="listed twice"):
        Registry(alliance="A", version=1, brands=(AIR, AIR))


def test_a_key_named_for_another_node_is_rejected() -> None:
    with pytest.raises(ValidationError, match="its key is named"):
        Brand(**{**AIR.model_dump(), "vkey": SIGNERS["cafe.example"].verifier().to_vkey()})


@pytest.mark.parametrize(
    ("field", "value"), [("point_value_fen", "0"), ("exchange_fee", "1"), ("exchange_fee", "-0.1")]
)
def test_a_zero_value_or_a_fee_outside_0_to_1_is_rejected(field: str, value: str) -> None:
    with pytest.raises(ValidationError, match=field):
        Brand(**{**AIR.model_dump(), field: Decimal(value)})


def test_a_broken_registry_file_gets_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("alliance = [")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_registry(tmp_path / "bad.toml")
    with pytest.raises(FileNotFoundError, match="registry"):
        load_registry(tmp_path / "missing.toml")
