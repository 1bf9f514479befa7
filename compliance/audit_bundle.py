"""Audit bundles: a compliance officer's filtered export of the audit trail, verifiable offline.

Format ``alliance-audit-bundle/1``: canonical JSON Lines (keys sorted, compact separators,
ASCII, each line ending in ``\\n``), nothing else. The first line is the manifest::

    {"attestation": <signed note>, "checkpoint": <signed note>, "count": N,
     "filter": <AuditFilter.to_dict()>, "format": "alliance-audit-bundle/1",
     "origin": "<node_id>/audit", "tree_size": S}

then one line per selected event, in strictly increasing ledger index order::

    {"event": <the event's canonical JSON object>, "index": I, "leaf_hash": "<hex>",
     "proof": ["<base64 hash>", ...]}

``checkpoint`` is the log's checkpoint at size ``S`` with the owner's signature only (as in
:mod:`ledger.export`), so every event is proven to be in the log by its inclusion proof
against that root, although the bundle holds only the events the filter selected.

``attestation`` is the node's signed statement about the selection, a C2SP signed note (same
key, one signature) whose text is seven lines::

    alliance-audit-bundle/1
    <origin>
    <tree size>
    <root hash, base64>
    <count>
    <canonical filter JSON>
    <hex SHA-256 of all event lines, in order, with their newlines>

Inclusion proofs show each event is genuine; the attestation binds the filter, the count and
the exact list of event lines, so nobody can widen the filter, or drop, add or swap events,
after the node signed. (It shows what the node claimed the filter selected; a node that
omitted events when exporting is caught by exporting again, or by a full ledger export.)

Verification re-derives each line's canonical bytes, so any changed byte fails one check.
:class:`BundleError` names the first bad event by its position in the bundle (``index``: 0
for the first event line after the manifest), and by its ledger index when the line gives one.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from compliance.audit import AuditEvent, AuditEventError, AuditFilter, decode_entry
from ledger import checkpoint as checkpoint_mod
from ledger import note
from ledger.canonical import canonical_json
from ledger.errors import LedgerError
from ledger.proof import verify_inclusion
from ledger.rfc6962 import HASH_SIZE, leaf_hash
from ledger.tree import MemoryTree

if TYPE_CHECKING:  # the verifier must not pay for importing the database layer
    from ledger.storage import Log

FORMAT = "alliance-audit-bundle/1"
MANIFEST_KEYS = frozenset({"attestation", "checkpoint", "count", "filter", "format", "origin", "tree_size"})
EVENT_KEYS = frozenset({"event", "index", "leaf_hash", "proof"})
MAX_LINE = 1 << 20
_SPOOL_BYTES = 16 << 20
SCAN_RATIO = 20
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
Progress = Callable[[int], None]


class BundleError(ValueError):
    """A bundle that fails verification.

    ``index`` is the position of the first bad event in the bundle (0 = the first event line),
    or ``None`` when the manifest or the bundle as a whole is at fault; ``ledger_index`` is
    that event's index in the log when its line could be read that far.
    """

    def __init__(self, message: str, index: int | None = None, ledger_index: int | None = None) -> None:
        super().__init__(message)
        self.index = index
        self.ledger_index = ledger_index


@dataclass(frozen=True)
class BundleManifest:
    """What an export wrote: the manifest line's contents and the root it proves against."""

    format: str
    origin: str
    filter: AuditFilter
    count: int
    tree_size: int
    root_hash: bytes
    checkpoint: str
    attestation: str
    events_sha256: str


@dataclass(frozen=True)
class VerifiedBundle:
    """What a verified bundle proves: these events are in ``origin``'s log of this size and root,
    and the node attested that they are all the events of that log the filter selects."""

    count: int
    tree_size: int
    root_hash: bytes
    origin: str
    filter: AuditFilter
    checkpoint: str


def _line(obj: dict[str, Any]) -> bytes:
    return canonical_json(obj) + b"\n"


def event_line(index: int, event_bytes: bytes, proof: list[bytes]) -> bytes:
    """The canonical bundle line of the event whose canonical encoding is ``event_bytes``."""
    # event_bytes is itself canonical JSON with sorted keys, so it embeds verbatim.
    return b'{"event":%s,"index":%d,"leaf_hash":"%s","proof":%s}\n' % (
        event_bytes,
        index,
        leaf_hash(event_bytes).hex().encode(),
        canonical_json([note.b64encode(p) for p in proof]),
    )


def attestation_text(
    origin: str, tree_size: int, root_hash: bytes, count: int, flt: dict[str, Any], events_sha256: str
) -> str:
    """The note text the node signs over a bundle (see the module docstring)."""
    fields = [FORMAT, origin, str(tree_size), note.b64encode(root_hash), str(count)]
    return "\n".join([*fields, canonical_json(flt).decode("ascii"), events_sha256]) + "\n"


def _owner_only(signed: str, signer: note.Signer) -> str:
    parsed = note.parse(signed)
    owner = (signer.name, signer.verifier().key_id)
    own = tuple(s for s in parsed.signatures if (s.name, s.key_id) == owner)
    if len(own) != 1:
        raise ValueError(f"the log's checkpoint carries no signature of {signer.name}'s key {owner[1]:08x}")
    return note.Note(parsed.text, own).render()


def export_bundle(
    trail_log: Log,
    signer: note.Signer,
    flt: AuditFilter,
    out: BinaryIO,
    progress: Progress | None = None,
    candidates: Callable[[int], list[int] | None] | None = None,
) -> BundleManifest:
    """Sign a checkpoint of ``trail_log``'s head and write every event up to it that ``flt`` selects.

    With ``candidates`` (tree size -> the entry indexes an index of the log finds for ``flt``, or
    ``None``), only those entries are read, each with its inclusion proof from the stored tree,
    checked against the signed checkpoint; otherwise every entry is read and the whole stored tree
    is checked against it. Raises :class:`compliance.audit.AuditEventError` naming the index of an
    entry that is not an audit event: an audit trail with such an entry is a finding, not something
    to skip. ``progress`` is called with the number of log entries read since the last call.
    """
    signed = _owner_only(trail_log.sign_checkpoint(signer), signer)
    cp = checkpoint_mod.Checkpoint.parse_text(note.parse(signed).text)
    indexes = candidates(cp.size) if candidates is not None else None
    # one entry read with its proof costs about what reading 20 entries in a scan does (measured):
    # past that share of the log, the scan is the faster way to the same bundle
    if indexes is None or len(indexes) * SCAN_RATIO > cp.size:
        selected = _scan(trail_log, flt, cp, progress)
    else:
        selected = _read(trail_log, flt, cp, indexes, progress)
    digest = hashlib.sha256()
    count = 0
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
        for index, data, proof in selected:
            line = event_line(index, data, proof)
            digest.update(line)
            spool.write(line)
            count += 1
        events_sha256 = digest.hexdigest()
        text = attestation_text(cp.origin, cp.size, cp.root_hash, count, flt.to_dict(), events_sha256)
        attestation = note.sign(text, signer)
        manifest = {
            "attestation": attestation,
            "checkpoint": signed,
            "count": count,
            "filter": flt.to_dict(),
            "format": FORMAT,
            "origin": cp.origin,
            "tree_size": cp.size,
        }
        out.write(_line(manifest))
        spool.seek(0)
        shutil.copyfileobj(spool, out)
    return BundleManifest(FORMAT, cp.origin, flt, count, cp.size, cp.root_hash, signed, attestation, events_sha256)


Selected = list[tuple[int, bytes, list[bytes]]]


def _scan(trail_log: Log, flt: AuditFilter, cp: checkpoint_mod.Checkpoint, progress: Progress | None) -> Selected:
    """Every entry read, the selected ones kept with proofs from one in-memory tree of them all."""
    leaves: list[bytes] = []
    chosen: list[tuple[int, bytes]] = []
    scanned = 0
    for entry in trail_log.entries(0, cp.size):
        leaves.append(entry.leaf_hash)
        if flt.matches(decode_entry(entry.index, entry.data)):
            chosen.append((entry.index, entry.data))
        scanned += 1
        if progress and scanned % 1000 == 0:
            progress(1000)
    if progress:
        progress(scanned % 1000)
    # Every entry is read anyway: one in-memory tree gives all proofs without a query each, and
    # checks that what the database holds is what the signed checkpoint commits to.
    tree = MemoryTree(leaves)
    if tree.root() != cp.root_hash:
        raise ValueError("the audit log's stored entries do not hash to its signed checkpoint: run `ledger check`")
    return [(index, data, tree.inclusion_proof(index, cp.size)) for index, data in chosen]


def _read(
    trail_log: Log, flt: AuditFilter, cp: checkpoint_mod.Checkpoint, indexes: list[int], progress: Progress | None
) -> Selected:
    """Only the candidates read; each selected one proved against the checkpoint before it is written."""
    out: Selected = []
    for index in indexes:
        data = trail_log.entry(index).data
        if flt.matches(decode_entry(index, data)):
            proof = trail_log.inclusion_proof(index, cp.size)
            try:  # the stored tree answers for each entry it gives out
                verify_inclusion(index, cp.size, leaf_hash(data), proof, cp.root_hash)
            except LedgerError as exc:
                raise ValueError(
                    f"audit entry {index} does not prove into the signed checkpoint: run `ledger check`"
                ) from exc
            out.append((index, data, proof))
    if progress:
        progress(len(indexes))
    return out


# --- verification -------------------------------------------------------------------------


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse(line: bytes) -> Any:
    try:
        return json.loads(line, parse_constant=_no_constants)
    except (ValueError, RecursionError):
        return None


def _canonical_or_none(obj: Any) -> bytes | None:
    try:
        return canonical_json(obj)
    except (ValueError, TypeError, RecursionError):
        return None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _open_single(signed: Any, verifier: note.Verifier, what: str) -> note.Note:
    """Open a note that must carry exactly one signature, the verifier's, and be in canonical form."""
    if not isinstance(signed, str):
        raise BundleError(f"manifest: {what} is not a signed note")
    try:
        parsed = note.open_note(signed, verifier)
    except LedgerError as exc:
        raise BundleError(f"manifest: {what}: {exc}") from exc
    if len(parsed.signatures) != 1:
        raise BundleError(f"manifest: {what} must carry exactly one signature, the node's")
    if parsed.render() != signed:
        raise BundleError(f"manifest: {what} is not in canonical form")
    return parsed


@dataclass(frozen=True)
class _Manifest:
    origin: str
    tree_size: int
    root_hash: bytes
    count: int
    filter: AuditFilter
    checkpoint: str
    events_sha256: str


def _read_manifest(stream: BinaryIO, verifier: note.Verifier) -> _Manifest:
    line = stream.readline(MAX_LINE)
    m = _parse(line)
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise BundleError(f"manifest: the first line is not an {FORMAT} manifest")
    if set(m) != MANIFEST_KEYS:
        raise BundleError(f"manifest: keys must be exactly {', '.join(sorted(MANIFEST_KEYS))}")
    origin, count, tree_size = m["origin"], m["count"], m["tree_size"]
    if not isinstance(origin, str) or not _is_int(count) or not _is_int(tree_size) or count < 0 or tree_size < 0:
        raise BundleError("manifest: bad field types")
    if _canonical_or_none(m) is None or _line(m) != line:
        raise BundleError("manifest: line is not in canonical form")
    try:
        flt = AuditFilter.from_dict(m["filter"])
    except ValueError as exc:
        raise BundleError(f"manifest: bad filter: {exc}") from exc
    parsed = _open_single(m["checkpoint"], verifier, "checkpoint")
    try:
        cp = checkpoint_mod.Checkpoint.parse_text(parsed.text)
    except LedgerError as exc:
        raise BundleError(f"manifest: checkpoint: {exc}") from exc
    if cp.origin != origin:
        raise BundleError(f"manifest: checkpoint origin {cp.origin!r} is not the manifest's {origin!r}")
    if cp.size != tree_size:
        raise BundleError(f"manifest: checkpoint size {cp.size} is not the manifest's tree_size {tree_size}")
    if count > tree_size:
        raise BundleError(f"manifest: count {count} exceeds tree_size {tree_size}")
    attested = _open_single(m["attestation"], verifier, "attestation").text
    prefix = attestation_text(origin, tree_size, cp.root_hash, count, m["filter"], "")[:-1]  # all but the digest
    events_sha256 = attested[len(prefix) : -1] if attested.startswith(prefix) else ""
    if not _SHA256_HEX.fullmatch(events_sha256):
        raise BundleError("manifest: the attestation does not state this origin, size, root, count and filter")
    return _Manifest(origin, tree_size, cp.root_hash, count, flt, m["checkpoint"], events_sha256)


def _proof_hashes(value: Any, where: str, pos: int, index: int) -> list[bytes]:
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise BundleError(f"{where}: proof is not a list of base64 hashes", pos, index)
    hashes = []
    for i, p in enumerate(value):
        try:
            h = note.b64decode(p, f"proof hash {i}")
        except LedgerError as exc:
            raise BundleError(f"{where}: {exc}", pos, index) from exc
        if len(h) != HASH_SIZE:
            raise BundleError(f"{where}: proof hash {i} is not {HASH_SIZE} bytes", pos, index)
        hashes.append(h)
    return hashes


def _check_event_line(line: bytes, pos: int, previous: int, m: _Manifest) -> int:
    """Check event line ``pos``; return its ledger index."""
    obj = _parse(line)
    if not isinstance(obj, dict) or set(obj) != EVENT_KEYS:
        raise BundleError(f"event {pos}: not an event line ({', '.join(sorted(EVENT_KEYS))})", pos)
    index = obj["index"]
    if not _is_int(index):
        raise BundleError(f"event {pos}: index is not an integer", pos)
    where = f"event {pos} (ledger index {index})"
    if not 0 <= index < m.tree_size:
        raise BundleError(f"{where}: index is outside the checkpoint's tree of size {m.tree_size}", pos, index)
    if index <= previous:
        raise BundleError(f"{where}: indexes must strictly increase (previous: {previous})", pos, index)
    event_bytes = _canonical_or_none(obj["event"])
    if event_bytes is None:
        raise BundleError(f"{where}: event is not JSON", pos, index)
    try:
        event = AuditEvent.from_json_object(obj["event"], event_bytes)
    except AuditEventError as exc:
        raise BundleError(f"{where}: {exc}", pos, index) from exc
    lh = leaf_hash(event_bytes)
    if obj["leaf_hash"] != lh.hex():
        raise BundleError(f"{where}: leaf_hash does not match the event", pos, index)
    proof = _proof_hashes(obj["proof"], where, pos, index)
    try:
        verify_inclusion(index, m.tree_size, lh, proof, m.root_hash)
    except LedgerError as exc:
        raise BundleError(f"{where}: inclusion proof does not verify: {exc}", pos, index) from exc
    if not m.filter.matches(event):
        raise BundleError(f"{where}: event does not match the manifest's filter", pos, index)
    if event_line(index, event_bytes, proof) != line:
        raise BundleError(f"{where}: line is not in canonical form", pos, index)
    return index


def verify_bundle(stream: BinaryIO, verifier: note.Verifier) -> VerifiedBundle:
    """Check a bundle offline with only the node's verifier key; raise :class:`BundleError` if it fails.

    Checks: the manifest is canonical; the checkpoint and the attestation each carry exactly
    one signature, the verifier's, and state the manifest's origin, tree size, root, count and
    filter; every event line is canonical, its index is below the tree size and above the
    previous one, its event is a valid audit event whose leaf hash matches and whose inclusion
    proof verifies against the checkpoint root, and it matches the filter; there are exactly
    ``count`` event lines; and the event lines are those the attestation signed.
    """
    m = _read_manifest(stream, verifier)
    digest = hashlib.sha256()
    previous = -1
    pos = 0
    while True:
        line = stream.readline(MAX_LINE)
        if not line:
            break
        if pos >= m.count:
            raise BundleError(f"event {pos}: more event lines than the manifest's count {m.count}", pos)
        previous = _check_event_line(line, pos, previous, m)
        digest.update(line)
        pos += 1
    if pos < m.count:
        raise BundleError(f"event {pos}: missing: the bundle ends after {pos} events, its count is {m.count}", pos)
    if digest.hexdigest() != m.events_sha256:
        raise BundleError("the event lines are not the ones the attestation signed")
    return VerifiedBundle(m.count, m.tree_size, m.root_hash, m.origin, m.filter, m.checkpoint)
