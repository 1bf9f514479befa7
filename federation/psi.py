"""Private set intersection between two brands: ECDH-PSI over ristretto255 (RFC 9496).

Each side hashes its items to the group (SHA-512 over a domain tag, the run's salt and the item,
then libsodium's ``crypto_core_ristretto255_from_hash``) and blinds them with a secret scalar drawn
for this run only. The blinded points cross once, in an order only the sender knows; each side
blinds the other's points again and sends them back in the order received. A point blinded by both
secrets is the same for an item both sides hold, and says nothing about any other item (DDH in
ristretto255). Both sides therefore learn the intersection and nothing else but the other side's
set size; what they keep of it is a per-run alignment id per common item, never the item.

Protocol, for sides A (who starts) and B, each a :class:`Party`:

1. A and B each contribute 32 random bytes; the run's salt is :func:`joint_salt` of both, so
   neither side chooses it alone.
2. Each sends :meth:`Party.blinded` (its points ``k·H(x)``, shuffled).
3. Each answers the other's points with :meth:`Party.reblind` (``k·P`` in the order received).
4. Each calls :meth:`Party.finish` with its own points as the other blinded them and the other's
   points as it blinded them: the common items, as alignment ids mapped to its own items.

Never raw hashes (a hash of a phone number is a phone number: the space is small) and never X25519
on hashed points (not a prime-order group): the maintained primitives of libsodium do the curve work.
The libsodium calls release the GIL, so a thread per core shares the work.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from federation.sodium import from_hash, scalar_random, scalarmult

#: What every hash of an item starts with: no hash made for another purpose can collide with ours.
DOMAIN = b"alliance-node/psi/ristretto255-sha512/v1\x00"
#: Bytes per encoded ristretto255 point.
POINT = 32
#: The smallest intersection a run accepts unless configured otherwise: with fewer members a
#: model (or the intersection itself) says too much about each of them.
DEFAULT_MINIMUM = 100
#: Points per peer message: 32,768 points are 1 MiB, well under a peer call's 4 MiB body limit.
CHUNK = 32_768


class PsiError(ValueError):
    """A message from the other side that is not what the protocol expects."""


class IntersectionTooSmall(PsiError):
    """The intersection is smaller than the run's minimum: nothing of it is kept."""

    def __init__(self, size: int, minimum: int) -> None:
        super().__init__(f"the intersection has {size} members, fewer than the minimum of {minimum}")
        self.size, self.minimum = size, minimum


def joint_salt(starter: bytes, answerer: bytes) -> bytes:
    """The run's salt from both sides' random contributions (32 bytes each), starter's first."""
    if len(starter) != 32 or len(answerer) != 32:
        raise PsiError("each side contributes 32 random bytes to the salt")
    return hashlib.sha256(DOMAIN + b"salt" + starter + answerer).digest()


def element_hash(salt: bytes, item: bytes) -> bytes:
    """The 64 bytes an item maps to the group from: SHA-512 over the domain, the salt and the item."""
    return hashlib.sha512(DOMAIN + len(salt).to_bytes(2, "big") + salt + item).digest()


def alignment_id(salt: bytes, point: bytes) -> str:
    """The id both sides give a common item in this run (the salt makes it new every run)."""
    return hashlib.sha256(DOMAIN + b"align" + salt + point).hexdigest()[:32]


def split_points(blob: bytes) -> list[bytes]:
    """A message's points; :class:`PsiError` unless it is whole points."""
    if len(blob) % POINT:
        raise PsiError(f"a points message is a multiple of {POINT} bytes, not {len(blob)}")
    return [blob[i : i + POINT] for i in range(0, len(blob), POINT)]


def chunks(blob: bytes, points: int = CHUNK) -> list[bytes]:
    """A points message cut into pieces of at most ``points`` points, for peer calls."""
    size = points * POINT
    return [blob[i : i + size] for i in range(0, len(blob), size)] or [b""]


@dataclass(frozen=True)
class Intersection:
    """One side's result: each common item's alignment id and its index in this side's items."""

    ids: dict[str, int]
    mine: int
    theirs: int

    def __len__(self) -> int:
        return len(self.ids)


class Party:
    """One side of a run: its items, a secret scalar for this run only and a secret shuffle."""

    def __init__(self, items: Sequence[bytes], salt: bytes, workers: int | None = None) -> None:
        if len(set(items)) != len(items):
            raise ValueError("items must be unique (normalise them first)")
        self.salt = salt
        self._items = list(items)
        self._key = scalar_random()
        self._order = list(range(len(items)))
        secrets.SystemRandom().shuffle(self._order)
        self._workers = workers or os.cpu_count() or 1
        self._sent: frozenset[bytes] = frozenset()

    @property
    def order(self) -> tuple[int, ...]:
        """Which item each point of :meth:`blinded` is, by position (this side's secret: never sent)."""
        return tuple(self._order)

    def blinded(self) -> bytes:
        """This side's items as points ``k·H(x)``, in the secret order."""
        salt, key = self.salt, self._key

        def blind(part: Sequence[bytes]) -> bytes:
            return b"".join(scalarmult(key, from_hash(element_hash(salt, x))) for x in part)

        blob = self._parallel([self._items[i] for i in self._order], blind)
        self._sent = frozenset(split_points(blob))
        return blob

    def reblind(self, theirs: bytes, expected: int | None = None) -> bytes:
        """The other side's points blinded again with this side's scalar, in the order received.

        ``expected``: the number of points the other side announced; a different count is refused.
        """
        points = split_points(theirs)
        if expected is not None and len(points) != expected:
            raise PsiError(f"{len(points)} points received, {expected} announced")
        if len(set(points)) != len(points):  # distinct items blind to distinct points
            raise PsiError("the other side sent the same point more than once")
        if self._sent & set(points):
            # this side's own points sent back as the other's would come back doubly blinded by this
            # side alone and match every item: a peer making this side believe everything is shared
            raise PsiError("the other side sent back points this side sent")
        key = self._key
        try:
            return self._parallel(points, lambda part: b"".join(scalarmult(key, p) for p in part))
        except (ValueError, RuntimeError) as exc:  # libsodium refuses non-canonical encodings and the identity
            raise PsiError("the other side sent a point that is not a valid ristretto255 encoding") from exc

    def finish(self, mine_twice: bytes, theirs_twice: bytes, minimum: int = DEFAULT_MINIMUM) -> Intersection:
        """The intersection from this side's points as the other side blinded them again (in this
        side's secret order) and the other side's points as this side blinded them again."""
        mine = split_points(mine_twice)
        if len(mine) != len(self._items):
            raise PsiError(f"{len(mine)} of this side's points came back, {len(self._items)} were sent")
        if len(set(mine)) != len(mine):  # distinct items blind to distinct points: a repeat is tampering
            raise PsiError("a point came back more than once")
        theirs = set(split_points(theirs_twice))
        ids = {
            alignment_id(self.salt, point): self._order[position]
            for position, point in enumerate(mine)
            if point in theirs
        }
        if len(ids) < minimum:
            raise IntersectionTooSmall(len(ids), minimum)
        return Intersection(ids, len(self._items), len(theirs))

    def _parallel(self, items: Sequence[bytes], work: Callable[[Sequence[bytes]], bytes]) -> bytes:
        if self._workers == 1 or len(items) < 2_000:
            return work(items)
        step = -(-len(items) // self._workers)
        with ThreadPoolExecutor(self._workers) as pool:
            return b"".join(pool.map(work, [items[i : i + step] for i in range(0, len(items), step)]))


def intersect(
    a: Iterable[bytes], b: Iterable[bytes], minimum: int = DEFAULT_MINIMUM
) -> tuple[Intersection, Intersection]:
    """Both sides of a run in one process (simulation and tests): each side's :class:`Intersection`."""
    salt = joint_salt(secrets.token_bytes(32), secrets.token_bytes(32))
    left, right = Party(list(a), salt), Party(list(b), salt)
    left_points, right_points = left.blinded(), right.blinded()
    right_twice, left_twice = left.reblind(right_points), right.reblind(left_points)
    return left.finish(left_twice, right_twice, minimum), right.finish(right_twice, left_twice, minimum)
