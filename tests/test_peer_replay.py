"""A signed peer call is accepted once: its nonce is kept in the node's database, so a restart forgets none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from node.api.app import create_app
from node.demo.alliance import BrandSpec, create_alliance
from node.peers.nonces import PeerNonces
from node.peers.signing import sign_request
from node.runtime import Node

RECORDS = "http://testserver/v1/peer/exchanges/records"


@pytest.fixture
def alliance(tmp_path: Path) -> Path:
    specs = [BrandSpec("air", "Air", Decimal(1), Decimal(0), 1), BrandSpec("shop", "Shop", Decimal(1), Decimal(0), 2)]
    create_alliance(tmp_path, specs)
    return tmp_path


def _signed_call(base: Path) -> httpx.Request:
    """A call from the airline to the shop, signed as the airline's node signs every peer call."""
    airline = Node.open(base / "air", recover=False)
    try:
        return sign_request(httpx.Request("POST", RECORDS, json={}), airline.signer)
    finally:
        airline.dispose()


def _send(base: Path, request: httpx.Request) -> httpx.Response:
    """Send ``request`` to a freshly started shop node (a new process would start the same way)."""
    shop = Node.open(base / "shop")
    try:
        with TestClient(create_app(shop), raise_server_exceptions=False) as client:
            return client.post(RECORDS, content=request.content, headers=dict(request.headers))
    finally:
        shop.dispose()


def test_a_captured_peer_call_replayed_after_a_restart_is_refused(alliance: Path) -> None:
    captured = _signed_call(alliance)
    assert _send(alliance, captured).status_code == 200
    replay = _send(alliance, captured)  # the shop's node restarted in between
    assert replay.status_code == 401, replay.text
    assert replay.json()["reason_code"] == "replayed"


def test_a_peer_nonce_is_forgotten_only_once_it_left_the_window(alliance: Path) -> None:
    node = Node.open(alliance / "shop")
    try:
        nonces, now = PeerNonces(node.store.engine), datetime.now(UTC)
        assert not nonces.seen("air.alliance.example", "n-old", now - timedelta(minutes=30))
        assert not nonces.seen("air.alliance.example", "n-new", now)
        assert nonces.seen("air.alliance.example", "n-new", now)
        # the old one left the window: pruned with the airline's next call, so it is new again
        assert not nonces.seen("air.alliance.example", "n-old", now - timedelta(minutes=30))
    finally:
        node.dispose()


def test_one_peers_calls_never_push_out_another_peers_nonces(alliance: Path) -> None:
    node = Node.open(alliance / "shop")
    try:
        nonces, now = PeerNonces(node.store.engine), datetime.now(UTC)
        assert not nonces.seen("air.alliance.example", "shared", now)
        for i in range(200):
            assert not nonces.seen("cafe.alliance.example", f"flood-{i}", now)
        assert nonces.seen("air.alliance.example", "shared", now)
        assert not nonces.seen("cafe.alliance.example", "shared", now)  # the same nonce from another peer
    finally:
        node.dispose()
