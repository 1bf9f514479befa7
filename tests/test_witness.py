"""C2SP tlog-witness add-checkpoint: cosign only what extends what was cosigned before."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from ledger import note
from ledger.checkpoint import Checkpoint
from ledger.compact import CompactRange
from ledger.cosignature import Cosignature, verify_cosignatures
from ledger.errors import LedgerError
from ledger.proof import consistency_ranges, resolve
from ledger.rfc6962 import leaf_hash
from ledger.witness import (
    MAX_PROOF_LINES,
    AddCheckpoint,
    InconsistentCheckpoint,
    MalformedRequest,
    MemoryWitnessState,
    SizeConflict,
    TreeHead,
    UnknownLog,
    UntrustedSignature,
    Witness,
    WitnessError,
)

ORIGIN = "example.com/log"
NOW = 1_700_000_000
LOG_KEY = note.Signer.generate(ORIGIN)
WITNESS_KEY = note.Signer.generate("example.com/witness")


class MemoryLog:
    """An in-memory Merkle tree over ``leaves`` that signs checkpoints and serves consistency proofs."""

    def __init__(self, leaves: list[bytes], signer: note.Signer = LOG_KEY, origin: str = ORIGIN) -> None:
        self.signer = signer
        self.origin = origin
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.roots = [CompactRange().root()]
        cr = CompactRange()
        for i, data in enumerate(leaves):
            h = leaf_hash(data)
            self.nodes[(0, i)] = h
            for level, completed in enumerate(cr.append(h), start=1):
                self.nodes[(level, ((i + 1) >> level) - 1)] = completed
            self.roots.append(cr.root())

    def root(self, size: int) -> bytes:
        return self.roots[size]

    def checkpoint(self, size: int) -> str:
        return Checkpoint(self.origin, size, self.root(size)).sign(self.signer)

    def proof(self, old: int, size: int) -> tuple[bytes, ...]:
        if old == 0 or old == size:
            return ()
        return tuple(resolve(consistency_ranges(old, size), lambda ids: {n: self.nodes[n] for n in ids}))

    def request(self, old: int, size: int) -> AddCheckpoint:
        return AddCheckpoint(old, self.proof(old, size), self.checkpoint(size))


def history(tag: bytes, n: int) -> list[bytes]:
    return [tag + b" %d" % i for i in range(n)]


HONEST = MemoryLog(history(b"honest", 40))
# Same first 10 entries, then a different history: a fork at index 10.
FORK_AT_10 = MemoryLog(history(b"honest", 10) + history(b"forked", 30))


def trusted(origin: str) -> list[note.Verifier]:
    return [LOG_KEY.verifier()] if origin == ORIGIN else []


def new_witness() -> Witness:
    return Witness(WITNESS_KEY, trusted, MemoryWitnessState(), clock=lambda: NOW)


@pytest.fixture
def witness() -> Witness:
    return new_witness()


def cosigned(witness: Witness, log: MemoryLog, old: int, size: int) -> str:
    request = log.request(old, size)
    line = witness.add_checkpoint(request)
    assert verify_cosignatures(request.checkpoint + line, witness.verifier()) == [Cosignature(WITNESS_KEY.name, NOW)]
    return line


# --- accepted submissions -------------------------------------------------------------------


def test_first_submission_with_old_size_zero_and_empty_proof_is_cosigned(witness):
    line = cosigned(witness, HONEST, 0, 5)
    assert line.startswith(note.SIG_PREFIX + WITNESS_KEY.name + " ")
    assert line.endswith("\n")
    assert line.count("\n") == 1
    assert witness.state.latest(ORIGIN) == TreeHead(5, HONEST.root(5))


def test_cosignature_verifies_with_the_witness_type_4_key(witness):
    request = HONEST.request(0, 5)
    line = witness.add_checkpoint(request)
    assert witness.verifier() == WITNESS_KEY.verifier(note.ALG_COSIGNATURE_V1)
    assert verify_cosignatures(request.checkpoint + line, WITNESS_KEY.verifier(note.ALG_COSIGNATURE_V1))


def test_next_submission_with_the_right_old_size_and_a_valid_proof_is_cosigned(witness):
    cosigned(witness, HONEST, 0, 5)
    cosigned(witness, HONEST, 5, 13)
    cosigned(witness, HONEST, 13, 40)
    assert witness.state.latest(ORIGIN) == TreeHead(40, HONEST.root(40))


def test_resubmitting_the_same_checkpoint_is_cosigned_again(witness):
    cosigned(witness, HONEST, 0, 8)
    cosigned(witness, HONEST, 8, 8)
    assert witness.state.latest(ORIGIN) == TreeHead(8, HONEST.root(8))


def test_an_empty_tree_checkpoint_is_cosigned_and_then_extended(witness):
    cosigned(witness, HONEST, 0, 0)
    cosigned(witness, HONEST, 0, 3)


def test_a_fork_after_the_cosigned_size_is_a_valid_extension(witness):
    cosigned(witness, HONEST, 0, 10)
    cosigned(witness, FORK_AT_10, 10, 20)


def test_the_cosignature_timestamp_comes_from_the_clock():
    witness = Witness(WITNESS_KEY, trusted, MemoryWitnessState(), clock=lambda: 1234.9)
    request = HONEST.request(0, 2)
    line = witness.add_checkpoint(request)
    assert verify_cosignatures(request.checkpoint + line, witness.verifier())[0].timestamp == 1234


# --- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize("old", [3, 4, 6, 7])
def test_wrong_old_size_is_a_size_conflict_carrying_the_latest_size(witness, old):
    cosigned(witness, HONEST, 0, 5)
    with pytest.raises(SizeConflict) as info:
        witness.add_checkpoint(HONEST.request(old, 9))
    assert info.value.latest_size == 5
    assert info.value.status == 409


def test_nonzero_old_size_before_any_cosignature_is_a_size_conflict_with_latest_zero(witness):
    with pytest.raises(SizeConflict) as info:
        witness.add_checkpoint(HONEST.request(4, 9))
    assert info.value.latest_size == 0


def test_old_size_zero_after_a_cosignature_is_a_size_conflict(witness):
    cosigned(witness, HONEST, 0, 5)
    with pytest.raises(SizeConflict) as info:
        witness.add_checkpoint(HONEST.request(0, 9))
    assert info.value.latest_size == 5


def test_same_size_with_another_root_is_a_split_view_size_conflict(witness):
    cosigned(witness, HONEST, 0, 15)
    with pytest.raises(SizeConflict, match="split view") as info:
        witness.add_checkpoint(FORK_AT_10.request(15, 15))
    assert info.value.latest_size == 15
    assert info.value.status == 409


def test_same_size_zero_with_another_root_is_a_split_view_size_conflict(witness):
    # tlog-witness: "If the old size matches the checkpoint size, the witness MUST check that
    # the root hashes are also identical" -- this holds for size 0 as for any other size.
    cosigned(witness, HONEST, 0, 0)
    bogus = Checkpoint(ORIGIN, 0, hashlib.sha256(b"not the empty tree").digest()).sign(LOG_KEY)
    with pytest.raises(SizeConflict):
        witness.add_checkpoint(AddCheckpoint(0, (), bogus))


def test_same_size_with_a_nonempty_proof_is_refused(witness):
    cosigned(witness, HONEST, 0, 8)
    request = AddCheckpoint(8, HONEST.proof(4, 8), HONEST.checkpoint(8))
    with pytest.raises(InconsistentCheckpoint):
        witness.add_checkpoint(request)


def test_a_proof_with_old_size_zero_is_refused(witness):
    request = AddCheckpoint(0, HONEST.proof(4, 8), HONEST.checkpoint(8))
    with pytest.raises(InconsistentCheckpoint):
        witness.add_checkpoint(request)


@pytest.mark.parametrize("size", [16, 20, 40])
def test_a_fork_of_the_cosigned_history_is_an_inconsistent_checkpoint(witness, size):
    cosigned(witness, HONEST, 0, 15)
    # the proof is a real consistency proof, but of the forked tree: it cannot match what was cosigned
    with pytest.raises(InconsistentCheckpoint) as info:
        witness.add_checkpoint(FORK_AT_10.request(15, size))
    assert info.value.status == 422


def test_a_valid_proof_for_another_checkpoint_is_inconsistent(witness):
    cosigned(witness, HONEST, 0, 15)
    request = AddCheckpoint(15, HONEST.proof(15, 20), HONEST.checkpoint(21))
    with pytest.raises(InconsistentCheckpoint):
        witness.add_checkpoint(request)


@pytest.mark.parametrize("mutation", ["flip", "drop", "extra", "short_hash"])
def test_a_damaged_proof_is_inconsistent(witness, mutation):
    cosigned(witness, HONEST, 0, 15)
    proof = list(HONEST.proof(15, 30))
    if mutation == "flip":
        proof[-1] = bytes([proof[-1][0] ^ 1]) + proof[-1][1:]
    elif mutation == "drop":
        proof.pop()
    elif mutation == "extra":
        proof.append(bytes(32))
    else:
        proof[0] = proof[0][:31]
    with pytest.raises(InconsistentCheckpoint):
        witness.add_checkpoint(AddCheckpoint(15, tuple(proof), HONEST.checkpoint(30)))


def test_unknown_origin_is_unknown_log(witness):
    stranger = MemoryLog(history(b"x", 4), signer=LOG_KEY, origin="example.com/other")
    with pytest.raises(UnknownLog) as info:
        witness.add_checkpoint(stranger.request(0, 4))
    assert info.value.status == 404


def test_checkpoint_signed_by_an_untrusted_key_is_untrusted_signature(witness):
    impostor = MemoryLog(history(b"honest", 8), signer=note.Signer.generate(ORIGIN))
    with pytest.raises(UntrustedSignature) as info:
        witness.add_checkpoint(impostor.request(0, 8))
    assert info.value.status == 403


def test_a_trusted_keys_bad_signature_is_untrusted_signature(witness):
    signed = HONEST.checkpoint(8)
    tampered = signed.replace(f"\n8\n{note.b64encode(HONEST.root(8))}\n", f"\n8\n{note.b64encode(HONEST.root(7))}\n")
    assert tampered != signed
    with pytest.raises(UntrustedSignature):
        witness.add_checkpoint(AddCheckpoint(0, (), tampered))


def test_old_size_larger_than_the_checkpoint_is_malformed(witness):
    cosigned(witness, HONEST, 0, 9)
    with pytest.raises(MalformedRequest) as info:
        witness.add_checkpoint(AddCheckpoint(9, (), HONEST.checkpoint(5)))
    assert info.value.status == 400


@pytest.mark.parametrize(
    "checkpoint",
    [
        "",
        "example.com/log\n5\n",
        "example.com/log\n05\nAAAA\n\n\u2014 example.com/log AAAAAAAA\n",
        "not a note",
    ],
)
def test_a_malformed_checkpoint_is_malformed(witness, checkpoint):
    with pytest.raises(MalformedRequest):
        witness.add_checkpoint(AddCheckpoint(0, (), checkpoint))


def test_refused_submissions_leave_the_record_unchanged(witness):
    cosigned(witness, HONEST, 0, 15)
    for request in [
        FORK_AT_10.request(15, 20),
        FORK_AT_10.request(15, 15),
        HONEST.request(14, 20),
        AddCheckpoint(16, (), HONEST.checkpoint(15)),
    ]:
        with pytest.raises(WitnessError):
            witness.add_checkpoint(request)
    assert witness.state.latest(ORIGIN) == TreeHead(15, HONEST.root(15))


def test_a_lost_compare_and_set_race_is_a_size_conflict():
    class RacingState(MemoryWitnessState):
        def compare_and_set(self, origin, expected, new):
            # another submission moves the record first
            super().compare_and_set(origin, expected, TreeHead(7, HONEST.root(7)))
            return False

    witness = Witness(WITNESS_KEY, trusted, RacingState(), clock=lambda: NOW)
    with pytest.raises(SizeConflict) as info:
        witness.add_checkpoint(HONEST.request(0, 5))
    assert info.value.latest_size == 7


def test_witness_errors_are_ledger_errors():
    assert issubclass(WitnessError, LedgerError)
    assert [c.status for c in (MalformedRequest, UnknownLog, UntrustedSignature, InconsistentCheckpoint)] == [
        400,
        404,
        403,
        422,
    ]


# --- request bodies -------------------------------------------------------------------------


def test_request_body_is_old_line_proof_lines_blank_line_then_checkpoint():
    request = HONEST.request(5, 13)
    body = request.render()
    lines = body.split("\n")
    assert lines[0] == "old 5"
    assert lines[1 : 1 + len(request.proof)] == [base64.b64encode(p).decode() for p in request.proof]
    assert lines[1 + len(request.proof)] == ""
    assert body.endswith("\n\n" + request.checkpoint)


@pytest.mark.parametrize(("old", "size"), [(0, 0), (0, 7), (5, 13), (13, 13), (1, 40)])
def test_request_render_and_parse_round_trip(old, size):
    request = HONEST.request(old, size)
    assert AddCheckpoint.parse(request.render()) == request


def test_parse_accepts_63_proof_lines():
    head = "old 5\n" + "\n".join([note.b64encode(bytes(32))] * MAX_PROOF_LINES)
    assert len(AddCheckpoint.parse(head + "\n\n" + HONEST.checkpoint(5)).proof) == MAX_PROOF_LINES


def _body(head: str) -> str:
    return head + "\n\n" + HONEST.checkpoint(5)


@pytest.mark.parametrize(
    "body",
    [
        "old 0\n" + HONEST.checkpoint(5),  # no blank line: the note's own blank line is found instead
        "old 0",
        _body("old 01"),
        _body("old 00"),
        _body("old -1"),
        _body("old +1"),
        _body("old  1"),
        _body("old 1 "),
        _body("old"),
        _body("old "),
        _body("Old 1"),
        _body("new 1"),
        _body("old 0x1"),
        _body("old \u0661"),
        _body(""),
        _body("old 1\n" + "\n".join([note.b64encode(bytes(32))] * (MAX_PROOF_LINES + 1))),
        _body("old 1\nnot base64!"),
        _body("old 1\n" + note.b64encode(bytes(32)).rstrip("=")),
        _body("old 1\n" + note.b64encode(bytes(32)) + " "),
        _body("old 1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB="),  # non-canonical padding bits
    ],
)
def test_malformed_request_bodies_are_malformed_requests(body):
    with pytest.raises(MalformedRequest):
        AddCheckpoint.parse(body)


def test_parse_without_a_blank_line_names_the_missing_separator():
    with pytest.raises(MalformedRequest, match="blank line"):
        AddCheckpoint.parse("old 0\nAAAA")


# --- a model of the witness over random histories ----------------------------------------------


@st.composite
def submissions(draw):
    """A list of (keep, new_leaves, size) steps: a candidate history that keeps ``keep`` leaves
    of what the witness last cosigned, then continues with ``new_leaves``; submit it at ``size``."""
    steps = draw(
        st.lists(st.tuples(st.integers(0, 30), st.integers(0, 12), st.integers(0, 30)), min_size=1, max_size=12)
    )
    salt = draw(st.binary(min_size=1, max_size=2))
    return steps, salt


@settings(max_examples=150, deadline=None)
@given(submissions())
def test_a_witness_never_cosigns_two_roots_for_one_size_and_refuses_every_fork(case):
    steps, salt = case
    witness = new_witness()
    cosigned_roots: dict[int, bytes] = {}
    witnessed: list[bytes] = []  # the leaves of the latest cosigned tree
    for step, (keep, fresh, size) in enumerate(steps):
        latest = len(witnessed)
        head_before = witness.state.latest(ORIGIN)
        # keep a prefix of what was cosigned, then new leaves (padding leaves may repeat old ones)
        candidate = witnessed[: min(keep, latest)] + [salt + b"%d/%d" % (step, i) for i in range(fresh)]
        candidate += [salt + b"pad %d" % i for i in range(latest - len(candidate))]
        size = min(max(size, latest), len(candidate))
        log = MemoryLog(candidate)
        extends = candidate[:latest] == witnessed
        try:
            line = witness.add_checkpoint(log.request(latest, size))
        except (SizeConflict, InconsistentCheckpoint):
            assert not extends, f"refused a valid extension from size {latest} to {size}"
            assert witness.state.latest(ORIGIN) == head_before
            event("fork refused")
            continue
        assert extends, f"cosigned a fork at size {size} of the tree cosigned at size {latest}"
        assert verify_cosignatures(log.checkpoint(size) + line, witness.verifier())
        assert cosigned_roots.setdefault(size, log.root(size)) == log.root(size), f"two roots cosigned at {size}"
        witnessed = candidate[:size]
        event("extension cosigned")
    # everything ever cosigned is a prefix of the one history the witness now follows
    final = MemoryLog(witnessed)
    assert all(size <= len(witnessed) and root == final.root(size) for size, root in cosigned_roots.items())


@settings(max_examples=100, deadline=None)
@given(
    st.integers(min_value=1, max_value=30),
    st.integers(min_value=0, max_value=29),
    st.integers(min_value=0, max_value=30),
)
def test_any_fork_before_the_cosigned_size_is_refused_at_any_later_size(cosigned_size, fork_at, extra):
    fork_at = min(fork_at, cosigned_size - 1)
    honest = MemoryLog(history(b"h", 60))
    forked = MemoryLog(history(b"h", fork_at) + history(b"f", 60 - fork_at))
    witness = new_witness()
    witness.add_checkpoint(honest.request(0, cosigned_size))
    size = cosigned_size + extra
    expected = SizeConflict if extra == 0 else InconsistentCheckpoint
    with pytest.raises(expected):
        witness.add_checkpoint(forked.request(cosigned_size, size))
    assert witness.state.latest(ORIGIN) == TreeHead(cosigned_size, honest.root(cosigned_size))
