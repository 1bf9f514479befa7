"""Check a local Merkle log against the roots anchored on chain (pure: the caller brings both sides).

For every anchor of the log's origin, the local log must be an extension of the anchored tree: the
local store proves consistency from the anchored size to its current size and the proof is checked
against the *anchored* root, so a log rewritten anywhere before an anchored size fails, however
consistent it is with itself. An anchor beyond the local size is a gap: the log lost entries or
was rolled back since it was anchored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

from ledger.errors import LedgerError
from ledger.proof import verify_consistency

Kind = Literal["consistent", "diverged", "gap"]


@dataclass(frozen=True)
class Anchor:
    """One anchored checkpoint: the log's size then and its root."""

    size: int
    root: bytes


@dataclass(frozen=True)
class Finding:
    """What one anchor says about the local log."""

    origin: str
    size: int
    kind: Kind
    detail: str

    @property
    def ok(self) -> bool:
        """The local log extends this anchor."""
        return self.kind == "consistent"


def check_log(
    origin: str,
    local_size: int,
    root_at: Callable[[int], bytes],
    consistency_proof: Callable[[int, int], list[bytes]],
    anchors: Iterable[Anchor],
) -> list[Finding]:
    """One finding per anchor of ``origin``, smallest size first."""
    findings = []
    head = root_at(local_size) if local_size else b""
    for a in sorted(anchors, key=lambda x: x.size):
        if a.size > local_size:
            findings.append(
                Finding(origin, a.size, "gap", f"anchored at size {a.size}, the local log has {local_size}")
            )
            continue
        try:
            verify_consistency(a.size, local_size, a.root, head, consistency_proof(a.size, local_size))
        except (LedgerError, ValueError) as exc:
            detail = f"the local log (size {local_size}) does not extend the root anchored at size {a.size}: {exc}"
            findings.append(Finding(origin, a.size, "diverged", detail))
        else:
            findings.append(Finding(origin, a.size, "consistent", f"extends the root anchored at size {a.size}"))
    return findings


def check_against_chain(log: LogView, anchored: Iterable[AnchorLike]) -> list[Finding]:
    """:func:`check_log` for a ledger :class:`~ledger.storage.Log` and the anchors read from the chain."""
    size = log.size
    return check_log(
        log.origin, size, log.root_at, log.consistency_proof, [Anchor(a.size, bytes(a.root)) for a in anchored]
    )


class LogView(Protocol):
    """What verification needs of a log (``ledger.storage.Log`` has it)."""

    origin: str

    @property
    def size(self) -> int: ...

    def root_at(self, size: int) -> bytes: ...

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]: ...


class AnchorLike(Protocol):
    """An anchored (size, root), e.g. :class:`contracts.client.AnchorRecord`."""

    size: int
    root: bytes
