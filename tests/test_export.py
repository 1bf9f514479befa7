"""Export files (JSON Lines) of a stored log and their offline verification."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Iterator

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ledger import note
from ledger.checkpoint import Checkpoint
from ledger.cosignature import cosign
from ledger.errors import ExportError
from ledger.export import FORMAT, entry_line, export_log, verify_export
from ledger.rfc6962 import EMPTY_ROOT, leaf_hash
from ledger.storage import LedgerStore, create_engine

SIGNER = note.Signer.generate("example.com/alliance")
VERIFIER = SIGNER.verifier()


@pytest.fixture(scope="module")
def export_store(tmp_path_factory) -> Iterator[LedgerStore]:
    store = LedgerStore(create_engine("sqlite:///" + str(tmp_path_factory.mktemp("export") / "x.db")))
    store.create_schema()
    yield store
    store.close()


def make_log(store: LedgerStore, name: str, items: list[bytes]):
    log = store.create_log(name, f"example.com/logs/{name}")
    if items:
        log.append(items)
    return log


def export_bytes(log, signer: note.Signer = SIGNER) -> bytes:
    out = io.BytesIO()
    export_log(log, signer, out)
    return out.getvalue()


def verify(data: bytes, verifier: note.Verifier = VERIFIER):
    return verify_export(io.BytesIO(data), verifier)


def lines_of(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def canonical(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"


ITEMS = [b"entry %d" % i for i in range(25)] + [b"", b"\x00\xff" * 40, "\u00e9t\u00e9".encode()]
N = len(ITEMS)


@pytest.fixture(scope="module")
def log(export_store):
    return make_log(export_store, "main", ITEMS)


@pytest.fixture(scope="module")
def export(log) -> bytes:
    return export_bytes(log)


def expect_error(data: bytes, index: int | None = None, verifier: note.Verifier = VERIFIER) -> ExportError:
    with pytest.raises(ExportError) as info:
        verify(data, verifier)
    if index is not None:
        assert info.value.index == index, str(info.value)
    return info.value


# --- the format -----------------------------------------------------------------------------


def test_export_verifies_and_matches_the_log_head(log, export):
    result = verify(export)
    head = log.head()
    assert (result.size, result.root_hash) == (head.size, head.root_hash)
    assert result.origin == log.origin
    assert result.log == log.name


def test_export_is_header_entries_then_checkpoint_each_canonical(log, export):
    lines = lines_of(export)
    assert len(lines) == 1 + N + 1
    assert lines[0] == canonical({"format": FORMAT, "origin": log.origin, "log": log.name, "size": N})
    for i, (line, data) in enumerate(zip(lines[1:-1], ITEMS, strict=True)):
        assert line == entry_line(i, data, leaf_hash(data))
        assert json.loads(line) == {"index": i, "data_b64": note.b64encode(data), "leaf_hash": leaf_hash(data).hex()}
    signed = json.loads(lines[-1])["checkpoint"]
    assert note.open_note(signed, VERIFIER).text == Checkpoint(log.origin, N, log.head().root_hash).text()


def test_export_returns_the_entry_count(log):
    assert export_log(log, SIGNER, io.BytesIO()) == N


def test_export_of_an_empty_log_verifies(export_store):
    empty = make_log(export_store, "empty", [])
    result = verify(export_bytes(empty))
    assert result.size == 0
    assert result.root_hash == EMPTY_ROOT == empty.head().root_hash


def test_export_of_a_one_entry_log_verifies(export_store):
    one = make_log(export_store, "one", [b"only"])
    assert verify(export_bytes(one)).root_hash == leaf_hash(b"only")


def test_export_after_more_appends_verifies_at_the_new_head(export_store):
    growing = make_log(export_store, "growing", [b"a", b"b"])
    assert verify(export_bytes(growing)).size == 2
    growing.append([b"c", b"d", b"e"])
    result = verify(export_bytes(growing))
    assert (result.size, result.root_hash) == (5, growing.head().root_hash)


def test_verify_reports_progress_summing_to_the_size(export):
    seen = []
    verify_export(io.BytesIO(export), VERIFIER, progress=seen.append)
    assert sum(seen) == N


# --- tampering with entries -----------------------------------------------------------------


def _replace_line(data: bytes, line_no: int, new: bytes) -> bytes:
    lines = lines_of(data)
    lines[line_no] = new
    return b"".join(lines)


@pytest.mark.parametrize("i", [0, 7, N - 1])
def test_a_changed_data_byte_is_detected_at_its_entry(export, i):
    data = bytearray(ITEMS[i] or b"\x00")
    data[0] ^= 0x01
    tampered = _replace_line(export, 1 + i, entry_line(i, bytes(data), leaf_hash(ITEMS[i])))
    expect_error(tampered, i)


@pytest.mark.parametrize("i", [0, 7, N - 1])
def test_a_changed_leaf_hash_is_detected_at_its_entry(export, i):
    lh = bytearray(leaf_hash(ITEMS[i]))
    lh[-1] ^= 0x80
    expect_error(_replace_line(export, 1 + i, entry_line(i, ITEMS[i], bytes(lh))), i)


def test_a_changed_entry_with_a_recomputed_leaf_hash_fails_the_root(export):
    forged = b"forged entry"
    err = expect_error(_replace_line(export, 1 + 5, entry_line(5, forged, leaf_hash(forged))))
    assert err.index is None
    assert "root" in str(err)


@pytest.mark.parametrize(("i", "j"), [(0, 1), (3, 9), (N - 2, N - 1)])
def test_swapped_entries_are_detected_at_the_first(export, i, j):
    lines = lines_of(export)
    lines[1 + i], lines[1 + j] = lines[1 + j], lines[1 + i]
    expect_error(b"".join(lines), i)


def test_swapped_entries_renumbered_to_look_in_order_fail_the_root(export):
    lines = lines_of(export)
    lines[1 + 3] = entry_line(3, ITEMS[4], leaf_hash(ITEMS[4]))
    lines[1 + 4] = entry_line(4, ITEMS[3], leaf_hash(ITEMS[3]))
    expect_error(b"".join(lines))


@pytest.mark.parametrize("i", [0, 10, N - 1])
def test_an_inserted_entry_is_detected_right_after_it(export, i):
    lines = lines_of(export)
    lines.insert(1 + i, entry_line(i, b"inserted", leaf_hash(b"inserted")))
    expect_error(b"".join(lines), i + 1)


def test_an_entry_appended_after_the_last_is_detected_where_the_checkpoint_belongs(export):
    lines = lines_of(export)
    lines.insert(1 + N, entry_line(N, b"extra", leaf_hash(b"extra")))
    expect_error(b"".join(lines), N)


def test_an_inserted_entry_with_a_raised_header_size_fails_the_checkpoint(log, export):
    lines = lines_of(export)
    lines.insert(1 + N, entry_line(N, b"extra", leaf_hash(b"extra")))
    lines[0] = canonical({"format": FORMAT, "origin": log.origin, "log": log.name, "size": N + 1})
    err = expect_error(b"".join(lines))
    assert "size" in str(err)


@pytest.mark.parametrize("i", [0, 12, N - 1])
def test_a_deleted_entry_is_detected_at_its_index(export, i):
    lines = lines_of(export)
    del lines[1 + i]
    expect_error(b"".join(lines), i)


def test_a_deleted_last_entry_with_a_lowered_header_size_fails_the_checkpoint(log, export):
    lines = lines_of(export)
    del lines[N]
    lines[0] = canonical({"format": FORMAT, "origin": log.origin, "log": log.name, "size": N - 1})
    expect_error(b"".join(lines))


@pytest.mark.parametrize("i", [0, 5, N - 1])
def test_a_non_canonical_entry_line_is_detected_at_its_entry(export, i):
    line = lines_of(export)[1 + i]
    spaced = line.replace(b'","leaf_hash"', b'", "leaf_hash"')
    assert spaced != line
    expect_error(_replace_line(export, 1 + i, spaced), i)


def test_an_entry_with_non_canonical_base64_is_detected(export_store):
    odd = make_log(export_store, "odd", [b"a", b"b"])  # "YQ==": the 'Q' carries four padding bits
    data = export_bytes(odd)
    tampered = data.replace(b'"data_b64":"YQ=="', b'"data_b64":"YR=="')
    assert tampered != data
    expect_error(tampered, 0)


# --- truncation and trailing data -----------------------------------------------------------


def _cut_points(export: bytes) -> list[tuple[int, int | None]]:
    """(cut offset, expected index) pairs: inside the header, in entries, between lines, in the checkpoint."""
    lines = lines_of(export)
    starts = [sum(len(x) for x in lines[:k]) for k in range(len(lines) + 1)]
    return [
        (0, None),
        (10, None),
        (starts[1] - 1, None),  # header without its newline
        (starts[1], 0),  # header only
        (starts[1] + 5, 0),  # inside entry 0
        (starts[1 + 9], 9),  # right before entry 9
        (starts[1 + 9] + 30, 9),  # inside entry 9
        (starts[1 + N - 1], N - 1),
        (starts[1 + N] - 1, N - 1),  # last entry without its newline
        (starts[1 + N], N),  # every entry, no checkpoint line
        (starts[1 + N] + 20, N),  # inside the checkpoint line
        (len(export) - 40, N),
        (len(export) - 1, None),  # checkpoint line without its final newline
    ]


def test_a_truncated_export_is_detected_wherever_it_is_cut(export):
    for cut, index in _cut_points(export):
        err = expect_error(export[:cut])
        if index is not None:
            assert err.index == index, (cut, str(err))


@pytest.mark.parametrize("garbage", [b"x", b"\n", b" ", b"{}\n", b'{"checkpoint":"x"}\n', b"\x00"])
def test_trailing_garbage_is_detected(export, garbage):
    expect_error(export + garbage)


def test_two_concatenated_exports_are_detected(export):
    expect_error(export + export)


# --- the checkpoint and the header ----------------------------------------------------------


def _with_checkpoint(export: bytes, signed: str) -> bytes:
    return _replace_line(export, len(lines_of(export)) - 1, canonical({"checkpoint": signed}))


def test_a_checkpoint_signed_by_another_key_is_detected(log, export):
    impostor = note.Signer.generate(SIGNER.name)  # same name, other key
    head = log.head()
    resigned = Checkpoint(log.origin, head.size, head.root_hash).sign(impostor)
    expect_error(_with_checkpoint(export, resigned))


def test_an_export_does_not_verify_with_another_key(export):
    expect_error(export, verifier=note.Signer.generate(SIGNER.name).verifier())


def test_an_export_signed_by_another_key_does_not_verify(export_store):
    other_signer = note.Signer.generate("example.com/other")
    exported = export_bytes(make_log(export_store, "other-signer", [b"x", b"y"]), other_signer)
    verify(exported, other_signer.verifier())
    expect_error(exported)


def test_a_checkpoint_with_a_forged_root_is_detected(log, export):
    forged = Checkpoint(log.origin, N, leaf_hash(b"forged")).sign(SIGNER)
    err = expect_error(_with_checkpoint(export, forged))
    assert "root" in str(err)


def test_a_checkpoint_of_another_log_with_the_same_entries_is_detected(export_store, export):
    twin = make_log(export_store, "twin", ITEMS)
    twin_checkpoint = json.loads(lines_of(export_bytes(twin))[-1])["checkpoint"]
    err = expect_error(_with_checkpoint(export, twin_checkpoint))
    assert "origin" in str(err)


def test_a_signature_line_added_to_the_exported_checkpoint_is_detected(log, export):
    # an export vouches only for what the owner's key covers, so nothing unverifiable may ride along
    signed = json.loads(lines_of(export)[-1])["checkpoint"]
    cosigned = signed + cosign(note.parse(signed).text, note.Signer.generate("example.com/w"), 1_700_000_000)
    err = expect_error(_with_checkpoint(export, cosigned))
    assert "exactly one signature" in str(err)


def test_stored_cosignatures_are_left_out_of_an_export(log, export):
    witness = note.Signer.generate("example.com/w")
    text = note.parse(log.sign_checkpoint(SIGNER)).text
    log.add_cosignature(log.size, witness.name, cosign(text, witness, 1_700_000_000))
    assert len(note.parse(log.latest_checkpoint()).signatures) == 2
    buf = io.BytesIO()
    export_log(log, SIGNER, buf)
    assert len(note.parse(json.loads(buf.getvalue().splitlines()[-1])["checkpoint"]).signatures) == 1
    buf.seek(0)
    assert verify_export(buf, SIGNER.verifier()).size == log.size


def test_a_header_with_another_log_name_is_detected(log, export):
    header = canonical({"format": FORMAT, "origin": log.origin, "log": "other", "size": N})
    err = expect_error(_replace_line(export, 0, header))
    assert "segment" in str(err)


def test_a_header_with_another_origin_and_matching_name_is_detected(export):
    header = canonical({"format": FORMAT, "origin": "example.com/logs/other", "log": "other", "size": N})
    err = expect_error(_replace_line(export, 0, header))
    assert "origin" in str(err)


@pytest.mark.parametrize(
    "header",
    [
        {"format": "alliance-ledger-export/2", "origin": "example.com/logs/main", "log": "main", "size": N},
        {"origin": "example.com/logs/main", "log": "main", "size": N},
        {"format": FORMAT, "origin": "example.com/logs/main", "log": "main", "size": N, "extra": 1},
        {"format": FORMAT, "origin": "example.com/logs/main", "log": "main", "size": -1},
        {"format": FORMAT, "origin": "example.com/logs/main", "log": "main", "size": str(N)},
        {"format": FORMAT, "origin": "example.com/logs/main", "log": "main", "size": float(N)},
        {"format": FORMAT, "origin": "example.com/logs/main", "log": ["main"], "size": N},
    ],
)
def test_a_malformed_header_is_detected(export, header):
    expect_error(_replace_line(export, 0, canonical(header)))


@pytest.mark.parametrize(("items", "size"), [([b"only"], True), ([], False)])
def test_a_boolean_header_size_is_detected(export_store, items, size):
    # JSON true/false are not sizes, even though Python's bool is an int equal to 1/0
    small = make_log(export_store, f"bool-{len(items)}", items)
    exported = export_bytes(small)
    verify(exported)
    header = canonical({"format": FORMAT, "origin": small.origin, "log": small.name, "size": size})
    expect_error(_replace_line(exported, 0, header))


def test_a_header_with_its_keys_reordered_is_detected(export):
    # the format fixes the key order (format, origin, log, size): one content, one byte string
    header = canonical({"format": FORMAT, "log": "main", "origin": "example.com/logs/main", "size": N})
    expect_error(_replace_line(export, 0, header))


def test_a_non_canonical_header_is_detected(export):
    header = lines_of(export)[0]
    expect_error(_replace_line(export, 0, header.replace(b'","log"', b'", "log"')))


def test_an_empty_stream_is_detected():
    expect_error(b"")


# --- any single changed byte is detected ------------------------------------------------------


@pytest.fixture(scope="module")
def small_export(export_store) -> bytes:
    rng = random.Random(20240607)
    items = [rng.randbytes(rng.randrange(0, 24)) for _ in range(20)]
    return export_bytes(make_log(export_store, "random", items))


def test_the_small_export_verifies(small_export):
    assert verify(small_export).size == 20


@settings(max_examples=500, deadline=None)
@given(data=st.data(), value=st.integers(min_value=0, max_value=255))
def test_changing_any_single_byte_anywhere_is_detected(small_export, data, value):
    position = data.draw(st.integers(min_value=0, max_value=len(small_export) - 1), label="position")
    assume(small_export[position] != value)
    tampered = bytearray(small_export)
    tampered[position] = value
    with pytest.raises(ExportError):
        verify(bytes(tampered))


def test_changing_every_byte_to_a_neighbouring_value_is_detected(small_export):
    # exhaustive companion of the property above, for the two closest values of every byte
    for position in range(len(small_export)):
        for delta in (1, -1):
            tampered = bytearray(small_export)
            tampered[position] = (tampered[position] + delta) % 256
            with pytest.raises(ExportError):
                verify(bytes(tampered))
