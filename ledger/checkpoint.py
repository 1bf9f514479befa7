"""C2SP ``tlog-checkpoint`` bodies: origin line, tree size, base64 root hash, extension lines."""

from __future__ import annotations

from dataclasses import dataclass

from ledger import note
from ledger.errors import CheckpointError, NoteError
from ledger.rfc6962 import HASH_SIZE

MAX_TREE_SIZE = 2**63 - 1  # sizes travel as signed 64-bit integers (databases, Go's int64)


def parse_tree_size(text: str) -> int:
    """Parse a tree size: ASCII decimal, no sign or leading zeros, at most 2**63 - 1."""
    if not text or len(text) > 19 or not text.isascii() or not text.isdigit() or (text != "0" and text[0] == "0"):
        raise CheckpointError(f"tree size {text[:30]!r} is not a decimal below 2**63 without leading zeros")
    size = int(text)
    if size > MAX_TREE_SIZE:
        raise CheckpointError(f"tree size {text} is not below 2**63")
    return size


@dataclass(frozen=True)
class Checkpoint:
    """A tree head of the log named by ``origin``."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin or not self.origin.isprintable():
            raise CheckpointError(f"invalid checkpoint origin {self.origin!r}")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise CheckpointError(f"checkpoint size must be between 0 and 2**63 - 1, got {self.size}")
        if len(self.root_hash) != HASH_SIZE:
            raise CheckpointError(f"checkpoint root must be {HASH_SIZE} bytes")
        if any(not e or "\n" in e for e in self.extensions):
            raise CheckpointError("checkpoint extension lines must be non-empty single lines")

    def text(self) -> str:
        """The note text of this checkpoint, ending in a newline."""
        lines = [self.origin, str(self.size), note.b64encode(self.root_hash), *self.extensions]
        return "\n".join(lines) + "\n"

    def sign(self, signer: note.Signer) -> str:
        """Return this checkpoint as a signed note."""
        return note.sign(self.text(), signer)

    @classmethod
    def parse_text(cls, text: str) -> Checkpoint:
        """Parse a checkpoint note text (no signatures)."""
        if not text.endswith("\n"):
            raise CheckpointError("checkpoint text must end in a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError("checkpoint needs origin, size and root lines")
        origin, size_line, root_line, *ext = lines
        size = parse_tree_size(size_line)
        try:
            root = note.b64decode(root_line, "checkpoint root")
        except NoteError as exc:
            raise CheckpointError(str(exc)) from exc
        return cls(origin, size, root, tuple(ext))


def open_checkpoint(signed: str, *verifiers: note.Verifier) -> tuple[Checkpoint, note.Note]:
    """Verify a signed checkpoint against trusted keys and parse its body."""
    parsed = note.open_note(signed, *verifiers)
    return Checkpoint.parse_text(parsed.text), parsed
