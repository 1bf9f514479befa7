"""C2SP signed notes and the Go note package's key text forms."""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger import note
from ledger.errors import NoteError
from ledger.note import ALG_COSIGNATURE_V1, ALG_ED25519, SIG_PREFIX, Signer, Verifier

# The example keys and notes of Go's golang.org/x/mod/sumdb/note package (example_test.go,
# BSD-3-Clause, The Go Authors). EnochRoot is the key GenerateKey derives from an all-zero seed.
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_PETER_SIG = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
GO_ENOCH_SIG = (
    "\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
)
GO_ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"

# The example note of the C2SP signed-note specification (its key is not published).
C2SP_NOTE = (
    "Ognuno sta solo sul cuor della terra\n"
    "trafitto da un raggio di sole:\n"
    "\n"
    "ed \u00e8 subito sera.\n"
    "\n"
    "\u2014 quasimodo.example/salvatore "
    "NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n"
)

TEXT = "example.com/log\n42\nsome text\n"


@pytest.fixture(scope="module")
def alice() -> Signer:
    return Signer.generate("example.com/alice")


@pytest.fixture(scope="module")
def bob() -> Signer:
    return Signer.generate("example.com/bob")


def c2sp_key_id(name: str, alg: int, public_key: bytes) -> int:
    return int.from_bytes(hashlib.sha256(name.encode() + b"\x0a" + bytes([alg]) + public_key).digest()[:4], "big")


def vkey_from_parts(name: str, hex_id: str, payload: bytes) -> str:
    return f"{name}+{hex_id}+{base64.b64encode(payload).decode()}"


def non_canonical(b64: str) -> str:
    """The same bytes with a padding bit set: a second encoding that lenient decoders accept."""
    assert b64.endswith("=")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    body = b64.rstrip("=")
    last = alphabet.index(body[-1])
    tweaked = body[:-1] + alphabet[last ^ 1] + b64[len(body) :]
    assert base64.b64decode(tweaked) == base64.b64decode(b64)
    assert tweaked != b64
    return tweaked


# --- keys -----------------------------------------------------------------------------------


def test_verifier_key_text_round_trips(alice):
    vkey = alice.verifier().to_vkey()
    parsed = Verifier.from_vkey(vkey)
    assert parsed == alice.verifier()
    assert parsed.to_vkey() == vkey


def test_signer_key_text_round_trips(alice):
    restored = Signer.from_skey(alice.to_skey())
    assert restored.name == alice.name
    assert restored.public_key == alice.public_key
    assert restored.to_skey() == alice.to_skey()
    assert restored.sign_raw(b"message") == alice.sign_raw(b"message")


def test_key_id_is_the_c2sp_formula(alice):
    expected = c2sp_key_id(alice.name, ALG_ED25519, alice.public_key)
    assert alice.verifier().key_id == expected
    assert note.key_id(alice.name, ALG_ED25519, alice.public_key) == expected
    assert alice.verifier().to_vkey().split("+")[1] == f"{expected:08x}"


def test_cosignature_key_id_uses_signature_type_4(alice):
    cosigner = alice.verifier(ALG_COSIGNATURE_V1)
    assert cosigner.key_id == c2sp_key_id(alice.name, ALG_COSIGNATURE_V1, alice.public_key)
    assert cosigner.key_id != alice.verifier().key_id
    assert alice.verifier().cosigner() == cosigner


def test_cosignature_verifier_key_text_round_trips(alice):
    vkey = alice.verifier(ALG_COSIGNATURE_V1).to_vkey()
    assert base64.b64decode(vkey.split("+", 2)[2])[0] == ALG_COSIGNATURE_V1
    assert Verifier.from_vkey(vkey) == alice.verifier(ALG_COSIGNATURE_V1)


def test_go_reference_keys_parse_and_match_each_other():
    signer = Signer.from_skey(GO_SKEY)
    verifier = Verifier.from_vkey(GO_VKEY)
    assert signer.verifier() == verifier
    assert verifier.key_id == 0xC74F20A3
    assert signer.to_skey() == GO_SKEY
    assert verifier.to_vkey() == GO_VKEY


def test_zero_seed_key_matches_go_generate_key_output():
    enoch = Signer("EnochRoot", Ed25519PrivateKey.from_private_bytes(bytes(32)))
    assert enoch.verifier().to_vkey() == GO_ENOCH_VKEY


def test_vkey_with_a_wrong_key_id_is_rejected(alice):
    name, hex_id, b64 = alice.verifier().to_vkey().split("+", 2)
    wrong = f"{(int(hex_id, 16) ^ 1):08x}"
    with pytest.raises(NoteError, match="does not match"):
        Verifier.from_vkey(f"{name}+{wrong}+{b64}")


@pytest.mark.parametrize("hex_id", ["c74f20a", "c74f20a30", "c74f20ag", ""])
def test_vkey_with_a_malformed_key_id_is_rejected(hex_id):
    b64 = GO_VKEY.split("+", 2)[2]
    with pytest.raises(NoteError):
        Verifier.from_vkey(f"PeterNeumann+{hex_id}+{b64}")


@pytest.mark.parametrize("b64", ["!!!!", "ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T", "ARpc 2QcU", "", "===="])
def test_vkey_with_bad_base64_is_rejected(b64):
    with pytest.raises(NoteError):
        Verifier.from_vkey(f"PeterNeumann+c74f20a3+{b64}")


def test_vkey_with_non_canonical_base64_is_rejected(alice):
    # a 34-byte payload leaves padding bits in the last character, so two texts decode alike
    payload = bytes([ALG_ED25519]) + alice.public_key + b"\x00"
    canonical = base64.b64encode(payload).decode()
    kid = f"{alice.verifier().key_id:08x}"
    with pytest.raises(NoteError, match="canonical"):
        Verifier.from_vkey(f"{alice.name}+{kid}+{non_canonical(canonical)}")


@pytest.mark.parametrize("alg", [0x00, 0x02, 0x03, 0x05, 0xFF])
def test_vkey_with_a_wrong_type_byte_is_rejected(alice, alg):
    kid = f"{c2sp_key_id(alice.name, alg, alice.public_key):08x}"
    with pytest.raises(NoteError):
        Verifier.from_vkey(vkey_from_parts(alice.name, kid, bytes([alg]) + alice.public_key))


@pytest.mark.parametrize("key_length", [0, 31, 33, 64])
def test_vkey_with_a_wrong_key_length_is_rejected(alice, key_length):
    key = (alice.public_key * 2)[:key_length]
    kid = f"{c2sp_key_id(alice.name, ALG_ED25519, key):08x}"
    with pytest.raises(NoteError):
        Verifier.from_vkey(vkey_from_parts(alice.name, kid, bytes([ALG_ED25519]) + key))


@pytest.mark.parametrize("name", ["with space", "with+plus", "tab\there", "nbsp\u00a0here", "", "em\u2003space"])
def test_vkey_with_an_invalid_name_is_rejected(alice, name):
    kid = f"{c2sp_key_id(name, ALG_ED25519, alice.public_key):08x}"
    with pytest.raises(NoteError):
        Verifier.from_vkey(vkey_from_parts(name, kid, bytes([ALG_ED25519]) + alice.public_key))


@pytest.mark.parametrize("name", ["with space", "with+plus", ""])
def test_signer_with_an_invalid_name_is_refused(name):
    with pytest.raises(NoteError):
        Signer.generate(name)


def test_skey_with_a_wrong_key_id_is_rejected(alice):
    private, key, name, hex_id, b64 = alice.to_skey().split("+", 4)  # the base64 may contain '+'
    with pytest.raises(NoteError, match="does not match"):
        Signer.from_skey(f"{private}+{key}+{name}+{(int(hex_id, 16) ^ 1):08x}+{b64}")


@pytest.mark.parametrize(
    "skey",
    [
        "PRIVATE+KEY+PeterNeumann+c74f20a3",
        "PUBLIC+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEY+PeterNeumann+c74f20a3+BIEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
    ],
)
def test_malformed_skey_is_rejected(skey):
    with pytest.raises(NoteError):
        Signer.from_skey(skey)


# --- signing and opening --------------------------------------------------------------------


def test_signed_note_verifies(alice):
    signed = note.sign(TEXT, alice)
    opened = note.open_note(signed, alice.verifier())
    assert opened.text == TEXT
    assert [(s.name, s.key_id) for s in opened.signatures] == [(alice.name, alice.verifier().key_id)]


def test_signed_note_is_text_blank_line_then_signature_lines(alice, bob):
    signed = note.sign(TEXT, alice, bob)
    assert signed.startswith(TEXT + "\n")
    lines = signed[len(TEXT) + 1 :].splitlines(keepends=True)
    assert [line.split(" ")[1] for line in lines] == [alice.name, bob.name]
    assert all(line.startswith(SIG_PREFIX) and line.endswith("\n") for line in lines)


def test_signature_line_carries_the_key_id_then_the_ed25519_signature(alice):
    line = alice.signature_line(TEXT)
    raw = base64.b64decode(line.rstrip("\n").split(" ")[2])
    assert struct.unpack(">I", raw[:4])[0] == alice.verifier().key_id
    assert alice.verifier().verify(TEXT.encode(), raw[4:])


def test_note_whose_text_changes_by_one_character_fails(alice):
    signed = note.sign(TEXT, alice)
    for i, c in enumerate(TEXT[:-1]):
        if c == "\n":
            continue
        altered = signed[:i] + ("X" if c != "X" else "Y") + signed[i + 1 :]
        with pytest.raises(NoteError):
            note.open_note(altered, alice.verifier())


def test_note_signed_by_another_key_fails(alice, bob):
    with pytest.raises(NoteError, match=r"no signature .*trusted"):
        note.open_note(note.sign(TEXT, bob), alice.verifier())


def test_note_with_another_key_of_the_same_name_fails(alice):
    impostor = Signer.generate(alice.name)
    with pytest.raises(NoteError, match=r"no signature .*trusted"):
        note.open_note(note.sign(TEXT, impostor), alice.verifier())


def test_signatures_from_unknown_keys_are_ignored_when_a_known_one_verifies(alice, bob):
    opened = note.open_note(note.sign(TEXT, bob, alice), alice.verifier())
    assert len(opened.signatures) == 2


def test_a_garbage_signature_from_an_unknown_key_is_ignored(alice):
    garbage = note.NoteSignature("example.com/stranger", 1, b"x" * 64)
    opened = note.open_note(note.sign(TEXT, alice) + garbage.line(), alice.verifier())
    assert opened.text == TEXT
    good, kept = opened.signatures  # the unknown signature stays on the note, unchecked
    assert kept == garbage
    assert (good.name, good.key_id) == (alice.name, alice.verifier().key_id)
    assert alice.verifier().verify(TEXT.encode(), good.signature)


def test_a_signature_sharing_only_the_name_or_only_the_key_id_of_a_known_key_is_ignored(alice):
    kid = alice.verifier().key_id
    same_name = note.NoteSignature(alice.name, kid ^ 1, b"x" * 64)
    same_id = note.NoteSignature("example.com/other", kid, b"x" * 64)
    opened = note.open_note(note.sign(TEXT, alice) + same_name.line() + same_id.line(), alice.verifier())
    good, *ignored = opened.signatures
    assert ignored == [same_name, same_id]
    assert (good.name, good.key_id) == (alice.name, kid)
    assert alice.verifier().verify(TEXT.encode(), good.signature)


def test_a_known_keys_bad_signature_rejects_the_whole_note(alice, bob):
    signed = note.sign(TEXT, alice, bob)
    parsed = note.parse(signed)
    bad_bob = note.NoteSignature(bob.name, bob.verifier().key_id, bytes(64))
    tampered = note.Note(parsed.text, (parsed.signatures[0], bad_bob)).render()
    note.open_note(tampered, alice.verifier())  # bob unknown: his bad signature is ignored
    with pytest.raises(NoteError, match="does not verify"):
        note.open_note(tampered, alice.verifier(), bob.verifier())


def test_a_note_with_no_verifiers_fails(alice):
    with pytest.raises(NoteError):
        note.open_note(note.sign(TEXT, alice))


def test_cosignature_verifiers_do_not_open_notes(alice):
    with pytest.raises(NoteError):
        note.open_note(note.sign(TEXT, alice), alice.verifier(ALG_COSIGNATURE_V1))


def test_an_uppercase_vkey_key_id_is_accepted_as_go_does():
    name, hex_id, b64 = GO_VKEY.split("+", 2)
    assert Verifier.from_vkey(f"{name}+{hex_id.upper()}+{b64}") == Verifier.from_vkey(GO_VKEY)


def test_non_canonical_signature_base64_from_a_trusted_key_is_rejected(alice):
    signed = note.sign(TEXT, alice)
    b64 = signed.rstrip("\n").rsplit(" ", 1)[1]  # 68 bytes: one '=' and two padding bits
    tampered = signed.replace(b64, non_canonical(b64))
    assert not note.parse(tampered).signatures[0].canonical  # parsing is as lenient as Go's
    with pytest.raises(NoteError, match="does not verify"):
        note.open_note(tampered, alice.verifier())


def test_non_canonical_base64_from_an_unknown_key_is_ignored(alice, bob):
    signed = note.sign(TEXT, alice, bob)
    bob_b64 = signed.rstrip("\n").rsplit(" ", 1)[1]
    assert note.open_note(signed.replace(bob_b64, non_canonical(bob_b64)), alice.verifier())


@pytest.mark.parametrize("text", ["no final newline", "", "bell\x07\n", "carriage\r\n"])
def test_signing_a_malformed_text_is_refused(alice, text):
    with pytest.raises(NoteError):
        note.sign(text, alice)


def test_signing_without_signers_is_refused():
    with pytest.raises(NoteError):
        note.sign(TEXT)


@pytest.mark.parametrize(
    "body",
    [
        TEXT,  # no blank line, no signatures
        TEXT + "\n",  # blank line but no signatures
        TEXT + "\n- alice AAAAAAAA\n",  # hyphen instead of em dash
        TEXT + "\n\u2014 alice\n",  # no signature field
        TEXT + "\n\u2014 alice AAAAAAAA extra\n",  # too many fields
        TEXT + "\n\u2014 alice AAAA\n",  # shorter than a key id plus one byte
        TEXT + "\n\u2014 al+ice AAAAAAAA\n",  # '+' in a key name
        TEXT + "\n\u2014 alice AAAAAAAA",  # no final newline
        TEXT + "\n\u2014 alice @@@@@@@@\n",  # not base64
    ],
)
def test_malformed_notes_are_rejected_by_parse(body):
    with pytest.raises(NoteError):
        note.parse(body)


def test_parse_accepts_at_least_16_signatures_and_at_most_64(alice):
    line = alice.signature_line(TEXT)
    assert len(note.parse(TEXT + "\n" + line * 16).signatures) == 16
    assert len(note.parse(TEXT + "\n" + line * note.MAX_SIGNATURES).signatures) == note.MAX_SIGNATURES
    with pytest.raises(NoteError):
        note.parse(TEXT + "\n" + line * (note.MAX_SIGNATURES + 1))


def test_parsed_note_renders_back_to_the_same_bytes(alice, bob):
    signed = note.sign(TEXT, alice, bob)
    assert note.parse(signed).render() == signed


# --- interoperability -----------------------------------------------------------------------


def test_go_reference_note_is_signed_byte_for_byte():
    assert note.sign(GO_TEXT, Signer.from_skey(GO_SKEY)) == GO_TEXT + "\n" + GO_PETER_SIG


def test_go_reference_note_verifies_with_its_published_key():
    opened = note.open_note(GO_TEXT + "\n" + GO_PETER_SIG, Verifier.from_vkey(GO_VKEY))
    assert opened.text == GO_TEXT
    assert opened.signatures[0].name == "PeterNeumann"
    assert opened.signatures[0].key_id == 0xC74F20A3


def test_parse_of_a_note_with_two_signature_lines_returns_both():
    two = GO_TEXT + "\n" + GO_PETER_SIG + GO_ENOCH_SIG
    parsed = note.parse(two)
    assert parsed.text == GO_TEXT
    assert [s.name for s in parsed.signatures] == ["PeterNeumann", "EnochRoot"]
    assert [s.key_id for s in parsed.signatures] == [0xC74F20A3, 0xAF0CFE78]
    assert all(len(s.signature) == 64 for s in parsed.signatures)
    assert parsed.render() == two


def test_go_reference_two_signature_note_is_reproduced_and_verifies_with_both_keys():
    peter = Signer.from_skey(GO_SKEY)
    enoch = Signer("EnochRoot", Ed25519PrivateKey.from_private_bytes(bytes(32)))
    two = note.sign(GO_TEXT, peter, enoch)
    assert two == GO_TEXT + "\n" + GO_PETER_SIG + GO_ENOCH_SIG
    note.open_note(two, Verifier.from_vkey(GO_VKEY), Verifier.from_vkey(GO_ENOCH_VKEY))
    note.open_note(two, Verifier.from_vkey(GO_ENOCH_VKEY))


def test_c2sp_spec_note_splits_at_the_last_blank_line():
    parsed = note.parse(C2SP_NOTE)
    assert (
        parsed.text
        == "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned \u00e8 subito sera.\n"
    )
    (sig,) = parsed.signatures
    assert sig.name == "quasimodo.example/salvatore"
    raw = base64.b64decode(C2SP_NOTE.rstrip("\n").rsplit(" ", 1)[1])
    assert sig.key_id == int.from_bytes(raw[:4], "big")
    assert len(sig.signature) == 64
    assert parsed.render() == C2SP_NOTE


def test_c2sp_spec_note_is_not_opened_by_an_unrelated_key(alice):
    with pytest.raises(NoteError, match=r"no signature .*trusted"):
        note.open_note(C2SP_NOTE, alice.verifier())
