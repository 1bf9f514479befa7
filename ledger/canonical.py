"""Canonical JSON: the one byte form of a JSON value that is logged, hashed or signed.

Ledger entries are made of it (audit events, committed exchanges), and so are the other bytes
that a hash or a signature pins: consent receipts, exchange quotes, settlement statements,
member tokens, impact assessments. One value has exactly one encoding, so two nodes that build
the same value append the same bytes and get the same leaf hash, and a verifier can re-encode
what it parsed and compare byte for byte.

The bytes are those Python's :func:`json.dumps` wrote for these values before this module
existed (with ``sort_keys=True, separators=(",", ":")`` and its default ``ensure_ascii=True``),
so entries, signatures and hashes made by older code still check. It is not RFC 8785 (JCS):
keys sort by code point rather than by UTF-16 code unit, numbers are Python's, and non-ASCII
is escaped rather than written as UTF-8.

Two formats that look alike are deliberately their own, each for data already written: the lines
of an export file (:mod:`ledger.export`, keys in a fixed order, not sorted) and the published text
of a privacy notice (:mod:`compliance.notices`, UTF-8, not escaped). Their modules say why.
"""

from __future__ import annotations

import json
from typing import Any

_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def canonical_json(value: Any) -> bytes:
    r"""The canonical JSON bytes of ``value``: the exact bytes of a ledger entry, a hash or a signature.

    The rule, byte for byte:

    - objects: keys sorted by Unicode code point. Keys must be strings, which is left to the caller
      (checking would add half again to the cost of encoding an audit event): ``json`` would write
      the keys ``9`` and ``10`` as strings but in numeric order, which is not canonical;
    - no whitespace at all: ``,`` between items, ``:`` between a key and its value;
    - strings: ``"`` and ``\`` as ``\"`` and ``\\``; backspace, form feed, newline, carriage
      return and tab as ``\b \f \n \r \t``; every other character outside printable ASCII
      (0x20-0x7E) as ``\uXXXX`` in lowercase hex (U+00E9 is ``\u00e9``, DEL is ``\u007f``,
      U+1D11E is the surrogate pair ``\ud834\udd1e``); ``/`` is not escaped. The output is
      ASCII, so its UTF-8 bytes are its ASCII bytes;
    - ``true``, ``false``, ``null``; integers in decimal; floats as Python's ``repr`` (``0.1``,
      ``1e+16``, ``1e-07``); NaN and the infinities are refused (``ValueError``);
    - lists and tuples are arrays; anything else that is not JSON (``Decimal``, ``datetime``,
      bytes) is a ``TypeError``: turn it into a string or a number first;
    - no trailing newline (a format that puts one value per line adds its own).

    Canonical bytes parse back (:func:`json.loads`) to an equal value, tuples as lists, and
    encoding what was parsed gives the same bytes again.
    """
    return _ENCODER.encode(value).encode("ascii")
