"""Edges found by review: a malformed exchange entry is skipped, not fatal; a naive settlement window is a
422, not a 500; a partner's refusal of a link claim reaches the member as a 422 with the partner's reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from node.api.app import create_app
from node.api.problems import status_of
from node.demo.alliance import BrandSpec, create_alliance
from node.exchange.records import ENTRY_TYPE, CommittedExchange, RecordError
from node.peers.outbound import PeerRefused
from node.peers.signing import sign_request
from node.runtime import Node
from node.settlement.reconcile import between, settled_exchanges

MALFORMED = json.dumps(
    {"type": ENTRY_TYPE, "quote": {"quote_id": "x"}, "link_id": "l", "source_sig": "", "destination_sig": ""}
).encode()


def test_an_exchange_entry_with_a_malformed_quote_is_not_an_exchange() -> None:
    with pytest.raises(RecordError):
        CommittedExchange.from_entry(MALFORMED)


def test_reconciliation_and_settlement_skip_an_entry_that_is_not_an_exchange() -> None:
    assert between([MALFORMED, b"not json"], "a", "b") == {}
    assert settled_exchanges([MALFORMED]) == []


@pytest.fixture
def alliance(tmp_path: Path) -> Path:
    specs = [BrandSpec("air", "Air", Decimal(1), Decimal(0), 1), BrandSpec("shop", "Shop", Decimal(1), Decimal(0), 2)]
    create_alliance(tmp_path, specs)
    return tmp_path


def test_a_settlement_window_without_a_time_zone_is_refused_not_a_server_error(alliance: Path) -> None:
    airline, shop = Node.open(alliance / "air", recover=False), Node.open(alliance / "shop")
    try:
        start = datetime(2026, 11, 1)  # naive
        end = (start + timedelta(days=1)).replace(tzinfo=UTC)
        body = {"window_start": start.isoformat(), "window_end": end.isoformat(), "statement": {}, "signature": "x"}
        url = "http://testserver/v1/peer/settlement/statement"
        signed = sign_request(httpx.Request("POST", url, json=body), airline.signer)
        with TestClient(create_app(shop), raise_server_exceptions=False) as client:
            r = client.post(url, content=signed.content, headers=dict(signed.headers))
    finally:
        airline.dispose()
        shop.dispose()
    assert r.status_code == 422, r.text


@pytest.mark.parametrize("reason", ["expired_code", "unknown_brand", "already_linked", "no_consent", "peer_refused"])
def test_a_partners_refusal_reaches_the_member_as_422_with_the_partners_reason(reason: str) -> None:
    assert status_of(PeerRefused(reason, "the partner said no")) == 422
