"""Check a local Merkle log against the roots anchored on chain (pure: the caller brings both sides).

For every anchor of the log's origin, the local log must be an extension of the anchored tree, checked
two ways. The entries' *data*, rehashed by the caller, must hash to the anchored root at the anchored size:
proofs are built from stored subtree hashes, which a rewrite of an entry's data in the database leaves
untouched, so only the data can vouch for itself. And the local store proves consistency from the
anchored size to its current size, checked against the *anchored* root, so the stored tree served to
others is the anchored one too. A rewrite anywhere before an anchored size fails, however consistent
the log is with itself; one after every anchor is reported for the local log as a whole. An anchor
beyond the local size is a gap: the log lost entries or was rolled back since it was anchored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
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
    """What one anchor says about the local log (or, when ``anchored`` is false, the local log's own data)."""

    origin: str
    size: int
    kind: Kind
    detail: str
    anchored: bool = True  # False: the local log at ``size`` does not match its own data, past every anchor

    @property
    def ok(self) -> bool:
        """The local log extends this anchor."""
        return self.kind == "consistent"


class Rehashed(Protocol):
    """A log rehashed from its entries' data (``ledger.storage.Rehash``)."""

    @property
    def roots(self) -> Mapping[int, bytes]:
        """Size -> the root the data of the first ``size`` entries hash to (missing: they could not be read)."""
        ...

    @property
    def rewritten(self) -> range | None:
        """The entries holding the first difference between the data and the stored tree, when known."""
        ...

    @property
    def problem(self) -> str:
        """The first difference between the data and the stored tree or head; empty when they agree."""
        ...


def check_log(
    origin: str,
    local_size: int,
    root_at: Callable[[int], bytes],
    consistency_proof: Callable[[int, int], list[bytes]],
    anchors: Iterable[Anchor],
    rehashed: Rehashed | None = None,
) -> list[Finding]:
    """One finding per anchor of ``origin``, smallest size first.

    With ``rehashed`` (the log rehashed from its data, with the roots at every anchored size), an anchor is
    also diverged when the data no longer hash to its root, or when the stored tree differs from the data
    before its size; a difference after every anchor adds one finding for the local log (``anchored`` false).
    """
    findings = []
    head = root_at(local_size) if local_size else b""
    problem = rehashed.problem if rehashed is not None else ""
    bad_from = _first_bad(rehashed, local_size)
    reported = False
    for a in sorted(anchors, key=lambda x: x.size):
        if a.size > local_size:
            findings.append(
                Finding(origin, a.size, "gap", f"anchored at size {a.size}, the local log has {local_size}")
            )
            continue
        reasons = []
        if rehashed is not None:
            data_root = rehashed.roots.get(a.size)
            if data_root != a.root:
                found = "cannot be read" if data_root is None else f"hash to {data_root.hex()}"
                reasons.append(f"its entries' data {found} at size {a.size}, not the anchored root {a.root.hex()}")
            if problem and bad_from < a.size:
                reasons.append(problem)
                reported = True
        try:
            verify_consistency(a.size, local_size, a.root, head, consistency_proof(a.size, local_size))
        except (LedgerError, ValueError) as exc:
            reasons.append(f"its stored tree is not consistent with it: {exc}")
        if reasons:
            detail = f"the local log (size {local_size}) does not extend the root anchored at size {a.size}: "
            findings.append(Finding(origin, a.size, "diverged", detail + "; ".join(reasons)))
        else:
            findings.append(Finding(origin, a.size, "consistent", f"extends the root anchored at size {a.size}"))
    if problem and not reported:
        detail = f"the local log's data no longer match its stored tree (after every anchored size): {problem}"
        findings.append(Finding(origin, local_size, "diverged", detail, anchored=False))
    return findings


def _first_bad(rehashed: Rehashed | None, local_size: int) -> int:
    """The first entry the data blame for a difference from the stored tree; ``local_size`` when none is blamed
    (no difference, or only the head's own root changed: then no anchored tree differs)."""
    if rehashed is None or not rehashed.problem or rehashed.rewritten is None:
        return local_size
    return rehashed.rewritten.start


def check_against_chain(log: LogView, anchored: Iterable[AnchorLike]) -> list[Finding]:
    """:func:`check_log` for a ledger :class:`~ledger.storage.Log` and the anchors read from the chain.

    The log's entries are rehashed from their data up to its head (O(n) time, O(log n) memory).
    """
    anchors = [Anchor(a.size, bytes(a.root)) for a in anchored]
    size = log.size
    rehashed = log.rehash(at=[a.size for a in anchors if a.size <= size])
    return check_log(log.origin, size, log.root_at, log.consistency_proof, anchors, rehashed)


class LogView(Protocol):
    """What verification needs of a log (``ledger.storage.Log`` has it)."""

    origin: str

    @property
    def size(self) -> int: ...

    def root_at(self, size: int) -> bytes: ...

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]: ...

    def rehash(self, at: Iterable[int] = ()) -> Rehashed: ...


class AnchorLike(Protocol):
    """An anchored (size, root), e.g. :class:`contracts.client.AnchorRecord`."""

    size: int
    root: bytes
