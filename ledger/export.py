"""Export files of a log (JSON Lines) and their offline verification.

Format ``alliance-ledger-export/1``, one JSON object per line, in canonical form (compact
separators, fixed key order, ASCII): a header ``{"format", "origin", "log", "size"}``, one
``{"index", "data_b64", "leaf_hash"}`` per entry, then ``{"checkpoint": <signed note>}``.
Verification re-derives every line's canonical bytes, so any changed byte is either a
parse failure, a non-canonical line, a leaf hash mismatch, a root mismatch or a bad
signature. The header's log name must be the last ``/`` segment of the origin, which the
signed checkpoint covers.
"""

from __future__ import annotations

import binascii
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import BinaryIO

from ledger import checkpoint as checkpoint_mod
from ledger import note
from ledger.compact import CompactRange
from ledger.errors import ExportError, LedgerError
from ledger.storage import Entry, Log

FORMAT = "alliance-ledger-export/1"
Progress = Callable[[int], None]


def _canonical(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"


def entry_line(index: int, data: bytes, leaf_hash: bytes) -> bytes:
    """The canonical export line of one entry."""
    return b'{"index":%d,"data_b64":"%s","leaf_hash":"%s"}\n' % (
        index,
        binascii.b2a_base64(data, newline=False),
        leaf_hash.hex().encode(),
    )


def write_export(
    out: BinaryIO,
    origin: str,
    log_name: str,
    entries: Iterable[Entry],
    size: int,
    signed_checkpoint: str,
    progress: Progress | None = None,
) -> int:
    """Write an export of ``size`` entries followed by the checkpoint; return the entry count."""
    out.write(_canonical({"format": FORMAT, "origin": origin, "log": log_name, "size": size}))
    count = 0
    for e in entries:
        if e.index != count:
            raise ExportError(f"entries are not contiguous at {count}", count)
        out.write(entry_line(e.index, e.data, e.leaf_hash))
        count += 1
        if progress and count % 10_000 == 0:
            progress(10_000)
    if count != size:
        raise ExportError(f"expected {size} entries, wrote {count}")
    if progress:
        progress(count % 10_000)
    out.write(_canonical({"checkpoint": signed_checkpoint}))
    return count


def export_log(log: Log, signer: note.Signer, out: BinaryIO, progress: Progress | None = None) -> int:
    """Sign a checkpoint of ``log``'s current head and export every entry up to it."""
    signed = log.sign_checkpoint(signer)
    cp = checkpoint_mod.Checkpoint.parse_text(note.parse(signed).text)
    return write_export(out, log.origin, log.name, log.entries(0, cp.size), cp.size, signed, progress)


@dataclass(frozen=True)
class VerifiedExport:
    """What a verified export proves: this origin's log had these entries at this size and root."""

    origin: str
    log: str
    size: int
    root_hash: bytes
    checkpoint: str


def _split_entry(line: bytes, index: int) -> tuple[bytes, bytes]:
    parts = line.split(b'"')
    if (
        len(parts) != 11
        or parts[0] != b"{"
        or parts[1] != b"index"
        or parts[3] != b"data_b64"
        or parts[4] != b":"
        or parts[6] != b","
        or parts[7] != b"leaf_hash"
        or parts[8] != b":"
        or parts[10] != b"}\n"
        or parts[2] != b":%d," % index
    ):
        raise ExportError(f"entry {index}: line is not the canonical entry line for index {index}", index)
    return parts[5], parts[9]


def verify_export(stream: BinaryIO, verifier: note.Verifier, progress: Progress | None = None) -> VerifiedExport:
    """Check an export offline: every leaf hash, the root, the size and the signature.

    Raises :class:`ExportError` naming the first bad entry index, or the failing check.
    """
    header_line = stream.readline()
    try:
        header = json.loads(header_line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ExportError("header: not a JSON line") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ExportError(f"header: format is not {FORMAT}")
    if set(header) != {"format", "origin", "log", "size"} or _canonical(header) != header_line:
        raise ExportError("header: not in canonical form")
    origin, log_name, size = header["origin"], header["log"], header["size"]
    if not isinstance(origin, str) or not isinstance(log_name, str) or not isinstance(size, int) or size < 0:
        raise ExportError("header: bad field types")
    if origin.rsplit("/", 1)[-1] != log_name:
        raise ExportError(f"header: log {log_name!r} is not the last segment of origin {origin!r}")

    cr = CompactRange()
    sha256 = hashlib.sha256
    a2b, b2a = binascii.a2b_base64, binascii.b2a_base64
    line = stream.readline()
    index = 0
    while index < size:
        if not line:
            raise ExportError(f"entry {index}: missing (the export ends after {index} of {size} entries)", index)
        b64, hex_hash = _split_entry(line, index)
        try:
            data = a2b(b64, strict_mode=True)
        except binascii.Error as exc:
            raise ExportError(f"entry {index}: data_b64 is not valid base64", index) from exc
        if b2a(data, newline=False) != b64:
            raise ExportError(f"entry {index}: data_b64 is not canonical base64", index)
        lh = sha256(b"\x00" + data).digest()
        if lh.hex().encode() != hex_hash:
            raise ExportError(f"entry {index}: leaf_hash does not match the entry's data", index)
        cr.append(lh)
        index += 1
        if progress and index % 10_000 == 0:
            progress(10_000)
        line = stream.readline()
    if progress:
        progress(index % 10_000)

    try:
        last = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ExportError(f"entry {index}: found where the checkpoint line was expected", index) from exc
    if not isinstance(last, dict) or set(last) != {"checkpoint"} or not isinstance(last["checkpoint"], str):
        raise ExportError(f"entry {index}: found where the checkpoint line was expected", index)
    if _canonical(last) != line:
        raise ExportError("checkpoint: line is not in canonical form")
    if stream.read(1):
        raise ExportError("trailing data after the checkpoint line")
    signed = last["checkpoint"]
    try:
        cp, _ = checkpoint_mod.open_checkpoint(signed, verifier)
    except LedgerError as exc:
        raise ExportError(f"checkpoint: {exc}") from exc
    if cp.origin != origin:
        raise ExportError(f"checkpoint: origin {cp.origin!r} is not the header's {origin!r}")
    if cp.size != size:
        raise ExportError(f"checkpoint: size {cp.size} is not the header's {size}")
    root = cr.root()
    if root != cp.root_hash:
        raise ExportError(f"root: entries hash to {root.hex()}, the checkpoint says {cp.root_hash.hex()}")
    return VerifiedExport(origin, log_name, size, root, signed)
