"""Peer calls: RFC 9421 signatures by registry keys, body digests, freshness and replay protection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import note
from node.peers.signing import PeerAuthError, PeerVerifier, sign_request

AIR, SHOP = note.Signer.generate("air.example"), note.Signer.generate("shop.example")
REGISTRY = {s.name: s.verifier() for s in (AIR, SHOP)}
URL = "http://127.0.0.1:8471/v1/peer/exchanges/credit"


def lookup(node_id: str) -> note.Verifier:
    return REGISTRY[node_id]


def signed(body: bytes = b'{"points": 10}', signer: note.Signer = AIR, **kwargs) -> httpx.Request:  # type: ignore[no-untyped-def]
    request = httpx.Request("POST", URL, content=body, headers={"content-type": "application/json"})
    return sign_request(request, signer, **kwargs)


def verify(request: httpx.Request, verifier: PeerVerifier | None = None, **changes) -> str:  # type: ignore[no-untyped-def]
    verifier = verifier or PeerVerifier(lookup)
    return verifier.verify(
        changes.get("method", request.method),
        changes.get("url", str(request.url)),
        changes.get("headers", list(request.headers.items())),
        changes.get("body", request.content),
    )


def reason(request: httpx.Request, **changes) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(PeerAuthError) as info:
        verify(request, **changes)
    return info.value.reason


def test_a_signed_request_verifies_and_names_its_node() -> None:
    assert verify(signed()) == "air.example"


def test_a_changed_body_fails_the_digest() -> None:
    assert reason(signed(), body=b'{"points": 99}') == "digest_mismatch"


@pytest.mark.parametrize(
    "change",
    [{"url": URL.replace("credit", "cancel")}, {"method": "PUT"}, {"url": URL.replace("8471", "8472")}],
)
def test_a_changed_target_or_method_fails(change: dict[str, str]) -> None:
    assert reason(signed(), **change) == "bad_signature"


def test_a_replayed_request_is_refused() -> None:
    request, verifier = signed(), PeerVerifier(lookup)
    verify(request, verifier)
    with pytest.raises(PeerAuthError) as info:
        verify(request, verifier)
    assert info.value.reason == "replayed"


def test_an_old_signature_is_refused() -> None:
    assert reason(signed(now=datetime.now(UTC) - timedelta(minutes=10))) == "expired"


def test_a_signature_from_the_future_is_refused() -> None:
    assert reason(signed(now=datetime.now(UTC) + timedelta(minutes=2))) == "from_the_future"


def test_a_node_outside_the_registry_is_refused() -> None:
    assert reason(signed(signer=note.Signer.generate("evil.example"))) == "unknown_node"


def test_another_key_under_a_registered_name_is_refused() -> None:
    assert reason(signed(signer=note.Signer.generate("air.example"))) == "bad_signature"


def test_an_unsigned_request_is_refused() -> None:
    assert reason(httpx.Request("POST", URL, content=b"{}")) == "unsigned"


def test_a_signature_that_does_not_cover_the_digest_is_refused() -> None:
    from http_message_signatures import HTTPMessageSigner, algorithms

    from node.peers.signing import _Keys

    request = httpx.Request("POST", URL, content=b"{}")
    HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=_Keys(signer=AIR)).sign(
        request, key_id=AIR.name, nonce="n1", label="peer", tag="alliance-peer", covered_component_ids=("@method",)
    )
    assert reason(request) == "missing_component"


@settings(max_examples=60)
@given(st.binary(min_size=1, max_size=200), st.data())
def test_flipping_any_byte_of_the_body_fails(body: bytes, data: st.DataObject) -> None:
    request = signed(body)
    i = data.draw(st.integers(0, len(body) - 1))
    altered = bytearray(body)
    altered[i] ^= data.draw(st.integers(1, 255))
    with pytest.raises(PeerAuthError):
        verify(request, body=bytes(altered))
