"""Peer calls signed with HTTP Message Signatures (RFC 9421), by registry keys, and replay-protected.

A node signs every request to a peer with its Ed25519 key: the signature covers the method, the
target URI and a ``Content-Digest`` (RFC 9530) of the body, and carries ``created``, a random
``nonce``, ``keyid`` = the node id and the application tag ``alliance-peer``. The receiving node
accepts a request only if the key id is a brand in its registry, the signature verifies under
that brand's key, every required component is covered, the body matches the digest, the
signature is at most ``max_age`` old (and not from the future), and the nonce was not seen before
(a node keeps seen nonces in its database, :mod:`node.peers.nonces`, so a restart forgets none).
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from http_message_signatures import HTTPMessageSigner, HTTPMessageVerifier, HTTPSignatureKeyResolver, algorithms
from http_message_signatures.exceptions import HTTPMessageSignaturesException, InvalidSignature

from ledger import note
from node.core.refusals import Refused

TAG = "alliance-peer"
LABEL = "peer"

#: While a peer call is answered: the digest of its verified ``Signature`` header
#: (:func:`compliance.provisions.signature_digest`), so personal information sent back in the answer
#: is recorded against the signed call that asked for it.
answering_call: ContextVar[str | None] = ContextVar("answering_call", default=None)
COVERED = ("@method", "@target-uri")  # the library adds content-digest when it is given the body
REQUIRED = ("@method", "@target-uri", "content-digest")
MAX_AGE = timedelta(seconds=300)
#: Every reason a peer call is refused as not authentic (HTTP 401).
AUTH_REASONS = (
    "unsigned",
    "unknown_node",
    "bad_signature",
    "digest_mismatch",
    "missing_component",
    "expired",
    "from_the_future",
    "replayed",
)


class PeerAuthError(Refused):
    """A peer request that is not authentic (``unsigned``, ``unknown_node``, ``replayed``…): HTTP 401."""


class _Keys(HTTPSignatureKeyResolver):
    def __init__(self, lookup: Callable[[str], note.Verifier] | None = None, signer: note.Signer | None = None):
        self.lookup = lookup
        self.signer = signer
        self.unknown: str | None = None

    def resolve_public_key(self, key_id: str) -> Ed25519PublicKey | None:
        try:
            verifier = self.lookup(key_id) if self.lookup else None
        except LookupError:
            verifier = None
        if verifier is None:
            self.unknown = key_id
            return None
        return Ed25519PublicKey.from_public_bytes(verifier.public_key)

    def resolve_private_key(self, key_id: str) -> object:
        if self.signer is None or key_id != self.signer.name:
            raise KeyError(key_id)
        return self.signer.private_key


class OutgoingRequest(Protocol):
    """An HTTP request about to be sent (an ``httpx.Request`` is one); this module never sends it."""

    method: str
    url: Any
    headers: Any
    content: bytes


R = TypeVar("R", bound=OutgoingRequest)


def sign_request(request: R, signer: note.Signer, *, now: datetime | None = None, nonce: str | None = None) -> R:
    """Add ``Content-Digest``, ``Signature-Input`` and ``Signature`` to ``request`` (in place) and return it."""
    HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=_Keys(signer=signer)).sign(
        request,
        key_id=signer.name,
        created=now or datetime.now(UTC),
        nonce=nonce or secrets.token_hex(16),
        label=LABEL,
        tag=TAG,
        covered_component_ids=COVERED,
        body=request.content,
    )
    return request


@dataclass
class _Message:
    """What the verifier needs of a received request: method, absolute URL, header lines."""

    method: str
    url: str
    headers: _Headers


class _Headers:
    def __init__(self, lines: Iterable[tuple[str, str]]) -> None:
        self.lines = list(lines)

    def items(self) -> list[tuple[str, str]]:
        return self.lines

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(name for name, _ in self.lines))

    def __contains__(self, name: object) -> bool:
        return any(isinstance(name, str) and n.lower() == name.lower() for n, _ in self.lines)

    def __getitem__(self, name: str) -> str:
        values = [v for n, v in self.lines if n.lower() == name.lower()]
        if not values:
            raise KeyError(name)
        return ", ".join(values)


class NonceStore(Protocol):
    """Where the nonces of accepted calls are kept for the replay window."""

    def seen(self, keyid: str, nonce: str, created: datetime) -> bool:
        """Record the nonce; return whether it was already there."""
        ...


class MemoryNonceStore:
    """Nonces seen within the replay window, in memory, bounded in size: for tests and tools; a
    restart forgets them, so a serving node uses :class:`node.peers.nonces.PeerNonces`."""

    def __init__(self, window: timedelta = MAX_AGE * 2, limit: int = 100_000) -> None:
        self.window = window
        self.limit = limit
        self._seen: OrderedDict[tuple[str, str], datetime] = OrderedDict()
        self._lock = threading.Lock()

    def seen(self, keyid: str, nonce: str, created: datetime) -> bool:
        """Record the nonce; return whether it was already there."""
        now = datetime.now(UTC)
        with self._lock:
            while self._seen and (len(self._seen) >= self.limit or next(iter(self._seen.values())) < now - self.window):
                self._seen.popitem(last=False)  # oldest first: insertion order is arrival order
            if (keyid, nonce) in self._seen:
                return True
            self._seen[(keyid, nonce)] = created
            return False


class PeerVerifier:
    """Authenticate requests from alliance nodes."""

    def __init__(
        self,
        lookup: Callable[[str], note.Verifier],
        nonces: NonceStore | None = None,
        max_age: timedelta = MAX_AGE,
    ) -> None:
        self.lookup = lookup
        self.nonces = nonces or MemoryNonceStore(max_age * 2)
        self.max_age = max_age

    def verify(self, method: str, url: str, headers: Iterable[tuple[str, str]], body: bytes) -> str:
        """The node id that signed this request, or :class:`PeerAuthError` saying why not."""
        message = _Message(method.upper(), url, _Headers(headers))
        if "signature" not in message.headers or "signature-input" not in message.headers:
            raise PeerAuthError("unsigned", "peer calls must carry an HTTP message signature (RFC 9421)")
        keys = _Keys(lookup=self.lookup)
        verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519, key_resolver=keys)
        try:
            [result] = verifier.verify(
                message,
                max_age=self.max_age,
                expect_tag=TAG,
                require_components=REQUIRED,
                body=body,
            )
        except (InvalidSignature, HTTPMessageSignaturesException, ValueError) as exc:
            raise _classify(exc, keys.unknown) from exc
        keyid, nonce = str(result.parameters.get("keyid")), result.parameters.get("nonce")
        if not nonce:
            raise PeerAuthError("missing_component", "a peer call's signature carries a nonce")
        created = datetime.fromtimestamp(int(result.parameters["created"]), UTC)
        if self.nonces.seen(keyid, str(nonce), created):
            raise PeerAuthError("replayed", "this request was already received (same nonce)")
        return keyid


def _classify(exc: Exception, unknown: str | None) -> PeerAuthError:
    text = str(exc)
    if unknown is not None:
        return PeerAuthError("unknown_node", f"{unknown!r} is not in the alliance registry")
    for needle, reason in (
        ("future", "from_the_future"),
        ("age exceeds", "expired"),
        ("Content-Digest does not match", "digest_mismatch"),
        ("requires a signed Content-Digest", "missing_component"),
        ("was not covered", "missing_component"),
    ):
        if needle in text:
            return PeerAuthError(reason, text)
    return PeerAuthError("bad_signature", f"the peer signature does not verify: {text}")
