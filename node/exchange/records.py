"""What both nodes write on their ``exchange`` log for a committed exchange, and the destination's receipt.

The destination, when it credits, signs a **receipt** over the quote (domain-separated). The log
entry carries the quote, the source's signature over it and the destination's receipt, so one
entry proves that both brands agreed. Both nodes append the very same bytes, so reconciliation can
compare leaf hashes, and a third party holding only the registry keys can check every entry.
Entries name the member only by the pair's link id. Pure: no I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ledger import note
from ledger.canonical import canonical_json
from node.exchange.quotes import QUOTE_DOMAIN, Quote, QuoteError

RECEIPT_DOMAIN = b"alliance-credit-receipt/1\n"
ENTRY_TYPE = "exchange.committed"


class RecordError(ValueError):
    """An exchange log entry or receipt that does not check out."""


def sign_receipt(quote: Quote, signer: note.Signer) -> str:
    """The destination's signature saying it credited ``quote`` (base64)."""
    if signer.name != quote.destination:
        raise RecordError(f"{signer.name} is not the destination of exchange {quote.quote_id}")
    return note.b64encode(signer.sign_raw(RECEIPT_DOMAIN + quote.canonical()))


def receipt_valid(quote: Quote, signature: str, destination: note.Verifier) -> bool:
    """Whether ``signature`` is ``destination``'s receipt for ``quote``."""
    try:
        sig = note.b64decode(signature, "receipt")
    except Exception:
        return False
    return destination.verify(RECEIPT_DOMAIN + quote.canonical(), sig)


@dataclass(frozen=True)
class CommittedExchange:
    """One exchange both nodes agreed on."""

    quote: Quote
    link_id: str
    source_sig: str
    destination_sig: str

    def entry(self) -> bytes:
        """The exchange log entry: canonical JSON, the same bytes on both nodes."""
        data = {
            "type": ENTRY_TYPE,
            "exchange_id": self.quote.quote_id,
            "link_id": self.link_id,
            "quote": self.quote.to_json(),
            "source_sig": self.source_sig,
            "destination_sig": self.destination_sig,
        }
        return canonical_json(data)

    @classmethod
    def from_entry(cls, data: bytes) -> CommittedExchange:
        """Parse an entry written by :meth:`entry` (:class:`RecordError` if it is not one)."""
        try:
            raw = json.loads(data)
            if raw.get("type") != ENTRY_TYPE:
                raise RecordError("not an exchange entry")
            return cls(Quote.from_json(raw["quote"]), str(raw["link_id"]), raw["source_sig"], raw["destination_sig"])
        except (ValueError, KeyError, TypeError, AttributeError, QuoteError) as exc:
            raise RecordError(f"not an exchange entry: {exc}") from exc

    def check(self, source: note.Verifier, destination: note.Verifier) -> None:
        """Both signatures verify under the brands' registry keys, or :class:`RecordError`."""
        try:
            sig = note.b64decode(self.source_sig, "quote signature")
        except Exception as exc:
            raise RecordError("the source signature is not base64") from exc
        if not source.verify(QUOTE_DOMAIN + self.quote.canonical(), sig):
            raise RecordError(f"exchange {self.quote.quote_id}: the source's signature does not verify")
        if not receipt_valid(self.quote, self.destination_sig, destination):
            raise RecordError(f"exchange {self.quote.quote_id}: the destination's receipt does not verify")
