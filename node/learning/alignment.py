"""Private set intersection between two nodes over signed peer calls: who a cross-brand run is about.

The label holder (the starter) and a partner (the answerer) each take their cross-brand cohort for
the other (``joint_modeling`` and ``joint_modeling:<other>`` consent, not minors, not erased, a phone
number on record) and run ECDH-PSI (:mod:`federation.psi`) on the phone numbers, in four kinds of
signed peer call, each through the egress check at the side whose members' points leave:

1. ``open``: the run's name and the starter's commitment (SHA-256) to its half of the salt; the
   answerer answers its own half, so neither side chooses the salt alone.
2. ``points``, one call per chunk: the starter reveals its half with the first and sends its blinded
   points, shuffled; the answerer answers each chunk blinded again, in the order received.
3. ``theirs``, one call per chunk: the answerer's blinded points, shuffled.
4. ``close``, one call per chunk: the answerer's points blinded again by the starter; after the last
   the answerer finishes and answers how many members are common.

Both sides then hold the intersection as the run's alignment ids mapped to their own pseudonyms
(never a phone number, never the other's pseudonyms), kept in the database until the run is
recorded. Each side audits the run with counts and a manifest hash of its side's common members.
An intersection smaller than either side's minimum is refused by both.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from compliance.egress import NON_PI
from compliance.service import ConsentService
from federation import psi
from federation.manifest import manifest
from node.core.audit import NodeAudit
from node.core.refusals import Refused
from node.learning.vertical_store import AlignmentStore
from node.peers.outbound import EgressRefused, Outbound, PeerRefused, PeerUnavailable

PURPOSE = "joint_modeling"
PATH = "/v1/peer/alignment"
#: Every field an alignment call carries: only the points of this side's members are personal information.
FIELDS: dict[str, str] = {
    "run": NON_PI,
    "commit": NON_PI,
    "salt": NON_PI,
    "minimum": NON_PI,
    "chunk": NON_PI,
    "chunks": NON_PI,
    "points": "contact.basic",  # this side's members' phone numbers, blinded
    "reblinded": NON_PI,  # the other side's points returned, blinded again: nothing of this side's members
}
#: How long an answerer keeps a run's state between calls.
SESSION_TTL = timedelta(minutes=30)


class AlignmentRefused(Refused):
    """A PSI run this node will not take part in, or a call out of turn (HTTP 422)."""


@dataclass(frozen=True)
class Aligned:
    """One side's result of a PSI run."""

    run: str
    peer: str
    ids: dict[str, str]  # alignment id -> this node's member pseudonym
    mine: int  # members this side brought
    theirs: int  # members the other side brought


@dataclass
class _Session:
    """The answerer's state of one run between calls (in memory: a restart means a new run)."""

    members: list[str]
    phones: list[bytes]
    commit: str
    half: bytes
    minimum: int
    chunks: int | None = None
    party: psi.Party | None = None
    theirs_started: bool = False  # once this side's points go out, the starter's are all in
    blinded: list[bytes] = field(default_factory=list)  # this side's points, in chunks
    reblinded: list[bytes] = field(default_factory=list)  # the starter's points, blinded again here
    returned: list[bytes] = field(default_factory=list)  # this side's points, blinded again there
    started: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class Alignment:
    """A node's side of PSI runs: :meth:`align` as the starter, ``on_*`` as the answerer."""

    node_id: str
    consent: ConsentService
    outbound: Outbound
    audit: NodeAudit
    store: AlignmentStore
    minimum: int = psi.DEFAULT_MINIMUM
    chunk: int = psi.CHUNK
    max_points: int = 2_000_000  # the most points the other side may send in a run
    _sessions: dict[tuple[str, str], _Session] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # --- the starter ---------------------------------------------------------------------------

    def align(self, peer: str, run: str, minimum: int | None = None) -> Aligned:
        """Run PSI with ``peer`` for ``run``; the common members' alignment ids are saved and returned."""
        floor = max(self.minimum, minimum or 0)
        cohort = self.consent.cross_brand_cohort(peer)
        members = sorted(cohort)
        if len(members) < floor:
            raise psi.IntersectionTooSmall(len(members), floor)
        half = secrets.token_bytes(32)
        opened = self._call(peer, "open", {"run": run, "commit": hashlib.sha256(half).hexdigest(), "minimum": floor})
        salt = psi.joint_salt(half, _hex(opened, "salt", 32))
        party = psi.Party([cohort[m].encode() for m in members], salt)
        order = party.order
        mine_twice = []
        pieces = psi.chunks(party.blinded(), self.chunk)
        for k, piece in enumerate(pieces):
            start = k * self.chunk
            who = [members[order[p]] for p in range(start, start + len(piece) // psi.POINT)]
            body = {"run": run, "chunk": k, "chunks": len(pieces), "points": _b64(piece)}
            answer = self._call(peer, "points", body | ({"salt": half.hex()} if k == 0 else {}), who)
            mine_twice.append(_points(answer, "reblinded", len(piece) // psi.POINT))
        theirs: list[bytes] = []
        total, count = 1, 0
        while len(theirs) < total:
            answer = self._call(peer, "theirs", {"run": run, "chunk": len(theirs)})
            total, count = _int(answer, "chunks"), _int(answer, "count")
            if count > self.max_points or total > -(-count // self.chunk) or total < 1:
                raise AlignmentRefused("bad_message", f"{peer} announced {count} points in {total} chunks")
            theirs.append(_points(answer, "points", None))
            if len(theirs[-1]) > self.chunk * psi.POINT:
                raise AlignmentRefused("bad_message", f"{peer} sent a chunk larger than {self.chunk} points")
        theirs_twice = party.reblind(b"".join(theirs), expected=count)
        result = party.finish(b"".join(mine_twice), theirs_twice, minimum=0)
        back = psi.chunks(theirs_twice, self.chunk)
        for k, piece in enumerate(back):
            closed = self._call(peer, "close", {"run": run, "chunk": k, "chunks": len(back), "reblinded": _b64(piece)})
        if _int(closed, "common") != len(result.ids):
            raise AlignmentRefused("alignment_mismatch", f"{peer} found {closed['common']} common members, here "
                                                         f"{len(result.ids)}: the run is void")
        if len(result.ids) < floor:
            raise psi.IntersectionTooSmall(len(result.ids), floor)
        return self._keep(run, peer, "starter", {a: members[i] for a, i in result.ids.items()}, result)

    def _call(self, peer: str, step: str, body: dict[str, Any], who: Sequence[str] = ()) -> dict[str, Any]:
        try:
            response = self.outbound.post(
                peer, f"{PATH}/{step}", json=body, fields=FIELDS, purpose=PURPOSE, cohort=list(who) or None
            )
        except (EgressRefused, Refused):
            raise
        except Exception as exc:
            raise PeerUnavailable("peer_unreachable", f"{peer} could not be reached: {exc}") from exc
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        answer = answer if isinstance(answer, dict) else {}
        if response.status_code != 200:
            reason = str(answer.get("reason_code") or "peer_refused")
            detail = str(answer.get("detail") or reason)
            raise PeerRefused(reason, detail) if response.status_code < 500 else PeerUnavailable(reason, detail)
        return answer

    # --- the answerer --------------------------------------------------------------------------

    def on_open(self, caller: str, run: str, commit: str, minimum: int) -> dict[str, Any]:
        """Take part in ``caller``'s run: answer this side's half of the salt."""
        if not run.startswith(f"{caller}/") or len(run) > 200:
            raise AlignmentRefused("bad_run", f"a run of {caller} is named {caller}/<name> (at most 200 characters)")
        if len(commit) != 64 or not all(c in "0123456789abcdef" for c in commit):
            raise AlignmentRefused("bad_message", "the commitment is a SHA-256 in lowercase hex")
        cohort = self.consent.cross_brand_cohort(caller)
        floor = max(self.minimum, int(minimum))
        if len(cohort) < floor:
            raise AlignmentRefused("intersection_too_small", f"{len(cohort)} members here may be aligned with "
                                                             f"{caller}, fewer than the minimum of {floor}")
        members = sorted(cohort)
        session = _Session(members, [cohort[m].encode() for m in members], commit, secrets.token_bytes(32), floor)
        with self._lock:
            now = datetime.now(UTC)
            for key in [k for k, s in self._sessions.items() if now - s.started > SESSION_TTL or k[0] == caller]:
                del self._sessions[key]  # stale, or an earlier run of this caller: one at a time per peer
            self._sessions[(caller, run)] = session
        return {"salt": session.half.hex()}

    def on_points(
        self, caller: str, run: str, chunk: int, chunks: int, points: str, salt: str | None
    ) -> dict[str, Any]:
        """Blind a chunk of the starter's points again (the first chunk reveals its half of the salt)."""
        session = self._session(caller, run)
        if (
            session.theirs_started
            or not 0 <= chunk < chunks
            or chunk != len(session.reblinded)
            or (session.chunks is not None and chunks != session.chunks)
        ):
            # a point blinded here after this side's own went out would make this node an oracle on numbers
            self._drop(caller, run)
            raise AlignmentRefused("out_of_turn", f"chunk {chunk} of {chunks} is not the next one: run void")
        with self._refusing(caller, run):
            if chunk == 0:
                if chunks * self.chunk > self.max_points:
                    raise AlignmentRefused("too_many_points", f"more than {self.max_points} points in one run")
                half = _salt_half(salt)
                if hashlib.sha256(half).hexdigest() != session.commit:
                    raise AlignmentRefused("bad_commitment", "the salt does not match the run's commitment: run void")
                session.party = psi.Party(session.phones, psi.joint_salt(half, session.half))
                session.chunks = chunks
                session.blinded = psi.chunks(session.party.blinded(), self.chunk)
            assert session.party is not None
            piece = _decode(points)
            if len(piece) > self.chunk * psi.POINT:
                raise AlignmentRefused("bad_message", f"a chunk holds at most {self.chunk} points")
            reblinded = session.party.reblind(piece)
        session.reblinded.append(reblinded)
        return {"reblinded": _b64(reblinded)}

    def on_theirs(self, caller: str, run: str, chunk: int) -> dict[str, Any]:
        """A chunk of this side's blinded points, once every chunk of the starter's is in (egress-checked)."""
        session = self._session(caller, run)
        if session.party is None or len(session.reblinded) != session.chunks or not 0 <= chunk < len(session.blinded):
            raise AlignmentRefused("out_of_turn", "this side's points go after all of the other side's")
        if chunk == 0 and not set(session.members) <= set(self.consent.cross_brand_cohort(caller)):
            self._drop(caller, run)  # someone withdrew or was erased since the run opened: nothing of theirs leaves
            raise AlignmentRefused("cohort_changed", "members left the cohort during the run: start it again")
        session.theirs_started = True
        piece = session.blinded[chunk]
        start = chunk * self.chunk
        who = [session.members[session.party.order[p]] for p in range(start, start + len(piece) // psi.POINT)]
        with self._refusing(caller, run):
            self.outbound.authorize(caller, FIELDS, {"points"}, purpose=PURPOSE, cohort=who)
        return {"points": _b64(piece), "chunks": len(session.blinded), "count": len(session.members)}

    def on_close(self, caller: str, run: str, chunk: int, chunks: int, reblinded: str) -> dict[str, Any]:
        """Take this side's points as the starter blinded them again; after the last chunk, finish."""
        session = self._session(caller, run)
        if session.party is None or chunk != len(session.returned) or chunks != len(session.blinded):
            raise AlignmentRefused("out_of_turn", f"chunk {chunk} of {chunks} is not the next one")
        with self._refusing(caller, run):
            session.returned.append(_decode(reblinded))
        if len(session.returned) < chunks:
            return {"common": None}
        self._drop(caller, run)
        try:
            result = session.party.finish(b"".join(session.returned), b"".join(session.reblinded), session.minimum)
        except psi.IntersectionTooSmall as exc:
            raise AlignmentRefused("intersection_too_small", str(exc)) from exc
        except psi.PsiError as exc:
            raise AlignmentRefused("bad_message", str(exc)) from exc
        still = set(self.consent.cross_brand_cohort(caller))  # a withdrawal since then counts now
        ids = {a: session.members[i] for a, i in result.ids.items() if session.members[i] in still}
        kept = self._keep(run, caller, "answerer", ids, result)
        return {"common": len(kept.ids)}

    def _session(self, caller: str, run: str) -> _Session:
        with self._lock:
            session = self._sessions.get((caller, run))
            if session is not None and datetime.now(UTC) - session.started > SESSION_TTL:
                del self._sessions[(caller, run)]
                session = None
        if session is None:
            raise AlignmentRefused("unknown_run", f"no alignment {run!r} with {caller} is open here")
        return session

    @contextmanager
    def _refusing(self, caller: str, run: str) -> Iterator[None]:
        """Any refusal or malformed input ends the run here (no half-run state is kept)."""
        try:
            yield
        except AlignmentRefused:
            self._drop(caller, run)
            raise
        except (ValueError, EgressRefused) as exc:  # PsiError is a ValueError: bad points, repeats, counts
            self._drop(caller, run)
            if isinstance(exc, EgressRefused):
                raise
            raise AlignmentRefused("bad_message", str(exc)) from exc

    def _drop(self, caller: str, run: str) -> None:
        with self._lock:
            self._sessions.pop((caller, run), None)

    # --- both ------------------------------------------------------------------------------------

    def _keep(self, run: str, peer: str, role: str, ids: dict[str, str], result: psi.Intersection) -> Aligned:
        self.store.save(run, peer, ids)
        common = manifest(sorted(ids.values()))
        self.audit(
            "fl.align",
            purpose_code=f"{PURPOSE}:{peer}",
            legal_basis="consent",
            subject_count=common.count,
            details={
                "run": run,
                "peer": peer,
                "role": role,
                "mine": result.mine,
                "theirs": result.theirs,
                "common": common.count,
                "members_sha256": common.sha256,
            },
        )
        return Aligned(run, peer, ids, result.mine, result.theirs)


def _salt_half(text: str | None) -> bytes:
    try:
        half = bytes.fromhex(text or "")
    except ValueError:
        half = b""
    if len(half) != 32:
        raise AlignmentRefused("bad_commitment", "the first chunk reveals the starter's 32-byte half of the salt")
    return half


def _b64(blob: bytes) -> str:
    return base64.b64encode(blob).decode()


def _decode(text: object) -> bytes:
    try:
        blob = base64.b64decode(str(text), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AlignmentRefused("bad_message", "points are base64") from exc
    if len(blob) % psi.POINT:
        raise AlignmentRefused("bad_message", f"points come in {psi.POINT}-byte units")
    return blob


def _points(answer: dict[str, Any], key: str, count: int | None) -> bytes:
    blob = _decode(answer.get(key, ""))
    if count is not None and len(blob) != count * psi.POINT:
        raise AlignmentRefused("bad_message", f"{count} points were sent, {len(blob) // psi.POINT} came back")
    return blob


def _int(answer: dict[str, Any], key: str) -> int:
    value = answer.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise AlignmentRefused("bad_message", f"the answer's {key} is not a count")
    return value


def _hex(answer: dict[str, Any], key: str, size: int) -> bytes:
    try:
        value = bytes.fromhex(str(answer.get(key, "")))
    except ValueError:
        value = b""
    if len(value) != size:
        raise AlignmentRefused("bad_message", f"the answer's {key} is {size} bytes in hex")
    return value
