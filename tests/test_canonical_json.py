"""One canonical JSON (:func:`ledger.canonical.canonical_json`), byte for byte, and data written before it.

The first half states the rule as examples and properties. The second half reads the legacy
fixture in ``tests/data/legacy/`` (written once by the code from before this function existed;
see its README.md) and checks that everything in it still verifies and re-encodes to the very
bytes that were logged, hashed or signed then.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from compliance.audit import AuditEvent
from compliance.audit_bundle import verify_bundle
from compliance.consent import ConsentAction
from compliance.fieldcrypt import FieldCipher
from compliance.notices import notice_bytes, parse_notice
from compliance.pia import Assessment
from compliance.pseudonyms import Keyring
from compliance.receipts import verify_receipt
from compliance.service import ConsentService
from compliance.store import ComplianceStore, NoticeRecord
from ledger import note
from ledger.canonical import canonical_json
from ledger.export import verify_export_file
from ledger.storage import create_engine
from node.core.auth import check_member_token
from node.exchange.records import CommittedExchange
from node.settlement.statements import bilateral_digest, statement_from_json, verify_statement

LEGACY = Path(__file__).parent / "data" / "legacy"

# --- the rule, by example ------------------------------------------------------------------------


def test_keys_are_sorted_and_there_is_no_whitespace() -> None:
    assert canonical_json({"b": 1, "a": [1, 2], "c": None}) == b'{"a":[1,2],"b":1,"c":null}'


def test_nested_objects_are_sorted_at_every_level() -> None:
    value = {"z": {"y": {"b": True, "a": False}, "x": [{"d": 1, "c": 2}]}}
    assert canonical_json(value) == b'{"z":{"x":[{"c":2,"d":1}],"y":{"a":false,"b":true}}}'


def test_keys_sort_by_code_point_not_by_utf16_unit() -> None:
    # U+1D11E is above U+FFFF by code point, below it in UTF-16 (RFC 8785 would put it first)
    value = {"\U0001d11e": 5, "\uffff": 4, "\u00e9": 3, "b": 2, "a": 1, "B": 0}
    assert canonical_json(value) == b'{"B":0,"a":1,"b":2,"\\u00e9":3,"\\uffff":4,"\\ud834\\udd1e":5}'


def test_non_ascii_is_escaped_so_the_bytes_are_ascii() -> None:
    text = "\u5929\u7a7a caf\u00e9 \U0001d11e"  # Chinese, an accent, an astral character
    assert canonical_json({"name": text}) == b'{"name":"\\u5929\\u7a7a caf\\u00e9 \\ud834\\udd1e"}'


def test_quotes_backslashes_and_control_characters_are_escaped_and_slash_is_not() -> None:
    assert canonical_json('"\\/\n\t\x00\x7f\u2028') == b'"\\"\\\\/\\n\\t\\u0000\\u007f\\u2028"'


def test_numbers_are_written_as_python_writes_them() -> None:
    value = [0, -1, 10**20, 0.1, 1e16, 1e-07, -0.0, 2.5, True, False, None]
    assert canonical_json(value) == b"[0,-1,100000000000000000000,0.1,1e+16,1e-07,-0.0,2.5,true,false,null]"


def test_there_is_no_trailing_newline() -> None:
    assert canonical_json({}) == b"{}"
    assert canonical_json("x") == b'"x"'


def test_tuples_are_arrays() -> None:
    assert canonical_json({"a": (1, "b")}) == b'{"a":[1,"b"]}'


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, {"deep": [1, math.nan]}])
def test_nan_and_infinity_are_refused(value: Any) -> None:
    with pytest.raises(ValueError, match="not JSON compliant"):
        canonical_json(value)


@pytest.mark.parametrize("value", [Decimal("1.5"), datetime(2026, 11, 1, tzinfo=UTC), b"bytes", {"a": {1, 2}}])
def test_values_that_are_not_json_are_refused(value: Any) -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        canonical_json(value)


# --- the rule, as properties ---------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=25,
)


@given(json_values)
def test_canonical_bytes_parse_back_to_the_value(value: Any) -> None:
    assert json.loads(canonical_json(value)) == value


@given(json_values)
def test_encoding_the_parsed_bytes_gives_the_same_bytes(value: Any) -> None:
    once = canonical_json(value)
    assert canonical_json(json.loads(once)) == once


@given(json_values)
def test_the_bytes_are_always_ascii(value: Any) -> None:
    assert canonical_json(value).isascii()


@given(json_values)
def test_the_bytes_are_those_the_replaced_encoders_wrote(value: Any) -> None:
    # what audit events, receipts, quotes, exchange entries, statements and tokens were made of
    assert canonical_json(value) == json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


# --- data written before there was one function ---------------------------------------------------


def _verifier(name: str) -> note.Verifier:
    return note.Verifier.from_vkey((LEGACY / f"{name}.vkey").read_text().strip())


def _logged_entries(log_name: str) -> list[bytes]:
    """The data of every entry line of a legacy log export (header and checkpoint lines skipped)."""
    lines = (LEGACY / f"{log_name}.export.jsonl").read_bytes().splitlines()
    return [base64.b64decode(json.loads(line)["data_b64"]) for line in lines[1:-1]]


def _consents() -> dict[str, Any]:
    return json.loads((LEGACY / "consents.json").read_text(encoding="utf-8"))


def _notice_body() -> bytes:
    return (LEGACY / "notice-v1.json").read_bytes()


@pytest.mark.parametrize("log_name", ["audit", "exchange"])
def test_legacy_log_exports_still_verify(log_name: str) -> None:
    verified = verify_export_file(LEGACY / f"{log_name}.export.jsonl", _verifier("node"))
    assert verified.size == len(_logged_entries(log_name)) > 0


def test_export_lines_keep_their_own_key_order_which_canonical_json_would_change() -> None:
    header_line = (LEGACY / "audit.export.jsonl").read_bytes().splitlines(keepends=True)[0]
    assert header_line.startswith(b'{"format":"alliance-ledger-export/1","origin":')
    assert canonical_json(json.loads(header_line)) + b"\n" != header_line


def test_the_legacy_audit_bundle_still_verifies() -> None:
    with open(LEGACY / "audit-bundle.jsonl", "rb") as f:
        verified = verify_bundle(f, _verifier("node"))
    assert verified.count > 0


def test_legacy_audit_events_include_escaped_non_ascii_text() -> None:
    # the fixture is only a test of escaping if some event has something to escape
    assert any(b"\\u" in data for data in _logged_entries("audit"))


def test_every_legacy_audit_event_re_encodes_to_its_logged_bytes() -> None:
    entries = _logged_entries("audit")
    assert entries
    assert [AuditEvent.from_bytes(data).to_bytes() for data in entries] == entries
    assert [canonical_json(json.loads(data)) for data in entries] == entries


def test_every_legacy_exchange_entry_re_encodes_to_its_logged_bytes() -> None:
    entries = _logged_entries("exchange")
    assert entries
    assert [CommittedExchange.from_entry(data).entry() for data in entries] == entries


def test_the_signatures_in_legacy_exchange_entries_still_check() -> None:
    keys = {v.name: v for v in (_verifier("node"), _verifier("peer"))}
    records = [CommittedExchange.from_entry(data) for data in _logged_entries("exchange")]
    assert {(r.quote.source, r.quote.destination) for r in records} == {
        ("n.example", "p.example"),
        ("p.example", "n.example"),
    }
    for r in records:
        r.check(keys[r.quote.source], keys[r.quote.destination])  # raises RecordError if one fails


def test_the_legacy_notice_is_utf8_and_still_hashes_to_what_its_consents_pin() -> None:
    body = _notice_body()
    consents = _consents()
    pinned = {r["notice_sha256"] for r in consents["records"]}
    pinned |= {verify_receipt(r, _verifier("node"))["policy"]["noticeSha256"] for r in consents["receipts"]}
    assert not body.isascii()  # Chinese, as published: the case canonical JSON would have escaped
    assert pinned == {hashlib.sha256(body).hexdigest()}


def test_the_node_recomputes_the_pinned_hash_from_the_parsed_legacy_notice() -> None:
    # ComplianceStore.notices parses the stored text; Notice.sha256 then re-encodes it
    notice = parse_notice(json.loads(_notice_body()))
    assert notice_bytes(notice) == _notice_body()
    assert notice.sha256() == _consents()["records"][0]["notice_sha256"]


def test_a_new_consent_under_the_legacy_notice_pins_the_same_hash(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'c.db'}")
    cipher = FieldCipher.generate()
    store = ComplianceStore(engine, cipher)
    store.create_schema()
    keyring = Keyring(engine, "n.example", cipher)
    keyring.create_schema()
    body = _notice_body().decode("utf-8")
    sha = hashlib.sha256(_notice_body()).hexdigest()
    with engine.begin() as conn:  # the row as the old code stored it when it published
        conn.execute(
            NoticeRecord.__table__.insert().values(
                version=1, sha256=sha, body=body, published_at=datetime(2026, 11, 1, tzinfo=UTC)
            )
        )
    svc = ConsentService(store, keyring, note.Signer.generate("n.example"), lambda *a, **k: None)
    pseudonym = svc.register_member("m-0002")
    receipt = svc.change("m-0002", ["marketing"], ConsentAction.GRANT)
    assert [r.notice_sha256 for r in store.history(pseudonym)] == [sha]
    assert json.loads(note.parse(receipt).text)["policy"]["noticeSha256"] == sha
    assert store.notice_text(1) == body


def test_legacy_consent_receipts_still_verify_and_re_encode_to_their_signed_text() -> None:
    receipts = _consents()["receipts"]
    assert receipts
    for signed in receipts:
        content = verify_receipt(signed, _verifier("node"))
        assert canonical_json(content).decode("ascii") + "\n" == note.parse(signed).text


def test_the_legacy_settlement_statement_signature_still_verifies() -> None:
    saved = json.loads((LEGACY / "statement.json").read_text())
    s = statement_from_json(saved["statement"])
    assert s.lines
    assert verify_statement(s, saved["signature"], _verifier("node"))
    assert s.digest == saved["digest"]
    assert bilateral_digest(s).hex() == saved["bilateral_digest"]


def test_a_legacy_member_token_still_checks_and_its_claims_re_encode() -> None:
    token = (LEGACY / "member-token.txt").read_text().strip()
    payload = base64.urlsafe_b64decode(token.split(".")[0] + "==")
    claims = json.loads(payload)
    caller = check_member_token(_verifier("node"), token, now=claims["iat"])
    assert caller.id == "\u4f1a\u5458-0001"
    assert canonical_json(claims) == payload


def test_the_legacy_assessment_still_hashes_to_what_the_audit_trail_pinned() -> None:
    saved = json.loads((LEGACY / "pia.json").read_text(encoding="utf-8"))
    sha = Assessment.model_validate(saved["assessment"]).sha256
    submitted = [json.loads(d) for d in _logged_entries("audit") if b'"action":"pia.submitted"' in d]
    assert sha == saved["sha256"]
    assert [e["details"]["sha256"] for e in submitted] == [sha]
