"""Typed errors of the ledger library: every malformed input has its own class."""

from __future__ import annotations


class LedgerError(Exception):
    """Base class of every error raised by :mod:`ledger`."""


class HashLengthError(LedgerError, ValueError):
    """A hash is not exactly 32 bytes long."""


class TreeSizeError(LedgerError, ValueError):
    """A tree size or index is out of range (negative, zero where forbidden, index >= size)."""


class ProofError(LedgerError):
    """A proof does not verify: wrong length, wrong hashes, or a root mismatch."""


class RootMismatchError(ProofError):
    """The root recomputed from a proof differs from the expected root."""


class NoteError(LedgerError):
    """A signed note or key is malformed, or no trusted signature on it verifies."""


class CheckpointError(LedgerError):
    """A checkpoint body is malformed."""


class StorageError(LedgerError):
    """The log store cannot do what was asked (unknown log, concurrent writer, bad range)."""


class UnknownLogError(StorageError):
    """The store holds no log of that name."""


class StorageUnavailableError(StorageError):
    """The database is locked by another writer for too long, or cannot be reached; retry later."""


class ExportError(LedgerError):
    """An export file fails verification; ``index`` names the first bad entry when known."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index

    def __reduce__(self) -> tuple[type, tuple[str, int | None]]:
        # keeps the index when the error crosses a process boundary (parallel verification)
        return (type(self), (str(self), self.index))
