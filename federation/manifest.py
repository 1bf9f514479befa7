"""What a training round used, as the audit trail records it (pure).

The manifest names no one: it holds the count and a SHA-256 over the sorted pseudonyms, so an
auditor holding the node's cohort for that day can recompute it, and a member who withdrew can be
shown absent from every later round without any list of members leaving the node.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

DOMAIN = b"alliance-training-manifest/1\n"


@dataclass(frozen=True)
class Manifest:
    """How many members a round trained on, and a commitment to exactly which."""

    count: int
    sha256: str

    def to_json(self) -> dict[str, int | str]:
        """As it goes into an audit event's details."""
        return {"count": self.count, "members_sha256": self.sha256}


def manifest(pseudonyms: Iterable[str]) -> Manifest:
    """The manifest of a set of pseudonyms (order and repeats do not matter)."""
    members = sorted(set(pseudonyms))
    digest = hashlib.sha256(DOMAIN + "\n".join(members).encode()).hexdigest()
    return Manifest(len(members), digest)
