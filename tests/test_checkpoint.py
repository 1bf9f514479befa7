"""C2SP tlog-checkpoint bodies and C2SP tlog-cosignature v1 lines."""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger import note
from ledger.checkpoint import Checkpoint, open_checkpoint
from ledger.cosignature import Cosignature, cosign, cosigned_message, verify_cosignatures
from ledger.errors import CheckpointError, NoteError
from ledger.note import ALG_COSIGNATURE_V1, ALG_ED25519, SIG_PREFIX, Signer

ORIGIN = "example.com/log"
ROOT = hashlib.sha256(b"some root").digest()
ROOT_B64 = base64.b64encode(ROOT).decode()
TIME = 1_700_000_000


@pytest.fixture(scope="module")
def log_key() -> Signer:
    return Signer.generate(ORIGIN)


@pytest.fixture(scope="module")
def witness_key() -> Signer:
    return Signer.generate("example.com/witness")


def cosig_body(line: str) -> bytes:
    assert line.startswith(SIG_PREFIX)
    assert line.endswith("\n")
    return base64.b64decode(line.rstrip("\n").split(" ")[2])


# --- body format ----------------------------------------------------------------------------


def test_checkpoint_text_is_origin_size_and_base64_root_each_on_a_line():
    assert Checkpoint(ORIGIN, 12345, ROOT).text() == f"{ORIGIN}\n12345\n{ROOT_B64}\n"


def test_checkpoint_text_of_the_empty_tree_has_size_zero():
    empty = hashlib.sha256(b"").digest()
    assert Checkpoint(ORIGIN, 0, empty).text() == f"{ORIGIN}\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"


def test_extension_lines_follow_the_root_line():
    cp = Checkpoint(ORIGIN, 7, ROOT, ("ext one", "ext two"))
    assert cp.text() == f"{ORIGIN}\n7\n{ROOT_B64}\next one\next two\n"


@pytest.mark.parametrize("extensions", [(), ("one extension",), ("a", "b c")])
def test_parse_text_round_trips(extensions):
    cp = Checkpoint(ORIGIN, 99, ROOT, extensions)
    assert Checkpoint.parse_text(cp.text()) == cp


def test_parse_accepts_size_zero():
    assert Checkpoint.parse_text(f"{ORIGIN}\n0\n{ROOT_B64}\n").size == 0


def test_parse_accepts_sizes_beyond_32_bits():
    assert Checkpoint.parse_text(f"{ORIGIN}\n{2**40}\n{ROOT_B64}\n").size == 2**40


@pytest.mark.parametrize(
    "size", ["01", "00", "007", "-1", "+1", " 1", "1 ", "1.0", "1e3", "", "0x10", "\u0661", "\u00b2"]
)
def test_parse_rejects_a_size_that_is_not_a_plain_decimal(size):
    with pytest.raises(CheckpointError):
        Checkpoint.parse_text(f"{ORIGIN}\n{size}\n{ROOT_B64}\n")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n",
        f"{ORIGIN}\n",
        f"{ORIGIN}\n5\n",
        f"5\n{ROOT_B64}\n",
        f"{ORIGIN}\n5\n{ROOT_B64}",  # no final newline
    ],
)
def test_parse_rejects_missing_lines(text):
    with pytest.raises(CheckpointError):
        Checkpoint.parse_text(text)


@pytest.mark.parametrize(
    "root_line",
    [
        "not base64!",
        ROOT_B64.rstrip("="),  # padding dropped
        ROOT_B64 + "=",
        " " + ROOT_B64,
        ROOT.hex(),
        "",
    ],
)
def test_parse_rejects_a_root_that_is_not_base64(root_line):
    with pytest.raises(CheckpointError):
        Checkpoint.parse_text(f"{ORIGIN}\n5\n{root_line}\n")


def test_parse_rejects_a_non_canonical_base64_root():
    # 32 bytes leave two padding bits in the 43rd character; setting one keeps the decoded value
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    tweaked = ROOT_B64[:42] + alphabet[alphabet.index(ROOT_B64[42]) ^ 1] + "="
    assert base64.b64decode(tweaked) == ROOT
    with pytest.raises(CheckpointError):
        Checkpoint.parse_text(f"{ORIGIN}\n5\n{tweaked}\n")


@pytest.mark.parametrize("length", [0, 1, 20, 31, 33, 48, 64])
def test_parse_rejects_a_root_that_is_not_32_bytes(length):
    root_line = base64.b64encode(bytes(range(length))).decode()
    with pytest.raises(CheckpointError):
        Checkpoint.parse_text(f"{ORIGIN}\n5\n{root_line}\n")


def test_parse_rejects_an_empty_origin():
    with pytest.raises(CheckpointError):
        Checkpoint.parse_text(f"\n5\n{ROOT_B64}\n")


def test_parse_rejects_an_empty_extension_line():
    with pytest.raises(CheckpointError):
        Checkpoint.parse_text(f"{ORIGIN}\n5\n{ROOT_B64}\n\n")


@pytest.mark.parametrize(
    ("origin", "size", "root"),
    [("", 1, ROOT), ("a\nb", 1, ROOT), ("bell\x07", 1, ROOT), (ORIGIN, -1, ROOT), (ORIGIN, 1, ROOT[:31])],
)
def test_constructor_rejects_invalid_fields(origin, size, root):
    with pytest.raises(CheckpointError):
        Checkpoint(origin, size, root)


def test_constructor_rejects_multi_line_extensions():
    with pytest.raises(CheckpointError):
        Checkpoint(ORIGIN, 1, ROOT, ("a\nb",))


# --- signed checkpoints ---------------------------------------------------------------------


def test_signed_checkpoint_opens_with_the_log_key(log_key):
    cp = Checkpoint(ORIGIN, 10, ROOT)
    opened, parsed = open_checkpoint(cp.sign(log_key), log_key.verifier())
    assert opened == cp
    assert parsed.text == cp.text()


def test_signed_checkpoint_does_not_open_with_another_key(log_key):
    other = Signer.generate(ORIGIN)
    with pytest.raises(NoteError):
        open_checkpoint(Checkpoint(ORIGIN, 10, ROOT).sign(log_key), other.verifier())


def test_signed_checkpoint_with_a_changed_size_does_not_open(log_key):
    signed = Checkpoint(ORIGIN, 10, ROOT).sign(log_key)
    with pytest.raises(NoteError):
        open_checkpoint(signed.replace("\n10\n", "\n11\n", 1), log_key.verifier())


# --- cosignatures (c2sp.org/tlog-cosignature) -------------------------------------------------


def test_cosigned_message_is_the_v1_header_time_line_and_checkpoint_text():
    text = Checkpoint(ORIGIN, 3, ROOT).text()
    assert cosigned_message(text, TIME) == f"cosignature/v1\ntime {TIME}\n{text}".encode()


@pytest.mark.parametrize("timestamp", [-1, 2**63, 2**64])
def test_cosigned_message_rejects_timestamps_outside_u63(timestamp):
    with pytest.raises(NoteError):
        cosigned_message("x\n", timestamp)


def test_cosignature_line_is_key_id_then_big_endian_timestamp_then_ed25519_signature(witness_key):
    text = Checkpoint(ORIGIN, 3, ROOT).text()
    line = cosign(text, witness_key, TIME)
    assert line.startswith(f"{SIG_PREFIX}{witness_key.name} ")
    body = cosig_body(line)
    assert len(body) == 4 + 8 + 64
    kid, timestamp = struct.unpack(">IQ", body[:12])
    assert kid == note.key_id(witness_key.name, ALG_COSIGNATURE_V1, witness_key.public_key)
    assert timestamp == TIME
    Ed25519PublicKey.from_public_bytes(witness_key.public_key).verify(body[12:], cosigned_message(text, TIME))


def test_cosignature_verifies_against_the_witness_cosignature_verifier(log_key, witness_key):
    cp = Checkpoint(ORIGIN, 3, ROOT)
    signed = cp.sign(log_key) + cosign(cp.text(), witness_key, TIME)
    found = verify_cosignatures(signed, witness_key.verifier(ALG_COSIGNATURE_V1))
    assert found == [Cosignature(witness_key.name, TIME)]


def test_cosignature_fails_when_the_checkpoint_text_changes(log_key, witness_key):
    cp = Checkpoint(ORIGIN, 3, ROOT)
    line = cosign(cp.text(), witness_key, TIME)
    other = Checkpoint(ORIGIN, 4, ROOT)
    with pytest.raises(NoteError, match="does not verify"):
        verify_cosignatures(other.sign(log_key) + line, witness_key.verifier(ALG_COSIGNATURE_V1))


def test_cosignature_fails_when_its_timestamp_changes(log_key, witness_key):
    cp = Checkpoint(ORIGIN, 3, ROOT)
    body = bytearray(cosig_body(cosign(cp.text(), witness_key, TIME)))
    body[11] ^= 1
    line = f"{SIG_PREFIX}{witness_key.name} {base64.b64encode(bytes(body)).decode()}\n"
    with pytest.raises(NoteError):
        verify_cosignatures(cp.sign(log_key) + line, witness_key.verifier(ALG_COSIGNATURE_V1))


def test_cosignature_of_the_wrong_length_from_a_known_witness_is_rejected(log_key, witness_key):
    cp = Checkpoint(ORIGIN, 3, ROOT)
    kid = witness_key.verifier(ALG_COSIGNATURE_V1).key_id
    short = note.NoteSignature(witness_key.name, kid, bytes(64)).line()  # no timestamp
    with pytest.raises(NoteError):
        verify_cosignatures(cp.sign(log_key) + short, witness_key.verifier(ALG_COSIGNATURE_V1))


def test_cosignature_is_not_found_with_the_type_1_verifier(log_key, witness_key):
    cp = Checkpoint(ORIGIN, 3, ROOT)
    signed = cp.sign(log_key) + cosign(cp.text(), witness_key, TIME)
    assert verify_cosignatures(signed, witness_key.verifier(ALG_ED25519)) == []


def test_cosignatures_from_unknown_witnesses_are_ignored(log_key, witness_key):
    cp = Checkpoint(ORIGIN, 3, ROOT)
    stranger = Signer.generate("example.com/stranger")
    signed = cp.sign(log_key) + cosign(cp.text(), stranger, TIME) + cosign(cp.text(), witness_key, TIME + 1)
    assert verify_cosignatures(signed, witness_key.verifier(ALG_COSIGNATURE_V1)) == [
        Cosignature(witness_key.name, TIME + 1)
    ]


def test_a_cosignature_line_does_not_count_as_a_note_signature_of_the_same_key():
    # same name and key, but signature type 0x04 gives another key id and another message
    key = Signer.generate(ORIGIN)
    cp = Checkpoint(ORIGIN, 3, ROOT)
    only_cosigned = cp.text() + "\n" + cosign(cp.text(), key, TIME)
    with pytest.raises(NoteError):
        open_checkpoint(only_cosigned, key.verifier())


def test_the_log_signature_still_opens_a_cosigned_checkpoint(log_key, witness_key):
    cp = Checkpoint(ORIGIN, 3, ROOT)
    signed = cp.sign(log_key) + cosign(cp.text(), witness_key, TIME)
    assert open_checkpoint(signed, log_key.verifier())[0] == cp
