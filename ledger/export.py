"""Export files of a log (JSON Lines) and their offline verification.

Format ``alliance-ledger-export/1``, one JSON object per line, in the export's canonical form
(compact separators, fixed key order, ASCII): a header ``{"format", "origin", "log", "size"}``,
one ``{"index", "data_b64", "leaf_hash"}`` per entry, then ``{"checkpoint": <signed note>}``.
Verification re-derives every line's canonical bytes, so any changed byte is either a
parse failure, a non-canonical line, a leaf hash mismatch, a root mismatch or a bad
signature. The header's log name must be the last ``/`` segment of the origin, which the
signed checkpoint covers.

The lines are a format of their own, not :func:`ledger.canonical.canonical_json`: their keys keep
the order above instead of being sorted. Every export written so far has that order, and the
verifier accepts only the exact line it would write itself, so sorting the keys would make every
existing export fail verification. (An entry's data, base64 in ``data_b64``, is whatever the log
holds: for the ``audit`` and ``exchange`` logs, canonical JSON.)
"""

from __future__ import annotations

import binascii
import hashlib
import json
import multiprocessing
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from ledger import checkpoint as checkpoint_mod
from ledger import note
from ledger.compact import CompactRange, perfect_root
from ledger.errors import ExportError, LedgerError

if TYPE_CHECKING:  # the verifier must not pay for importing the database layer
    from ledger.storage import Entry, Log

FORMAT = "alliance-ledger-export/1"
Progress = Callable[[int], None]


def _line(obj: dict) -> bytes:
    """A header or checkpoint line: compact, ASCII, keys in the order given (never sorted: see the module)."""
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
    root: bytes | None = None,
) -> int:
    """Write an export of ``size`` entries followed by the checkpoint; return the entry count.

    With ``root`` (the checkpoint's), the entries' leaf hashes must make that root: otherwise
    :class:`ExportError` is raised before the checkpoint line, so the output never looks complete.
    """
    out.write(_line({"format": FORMAT, "origin": origin, "log": log_name, "size": size}))
    count = 0
    tree = CompactRange()
    chunk: list[bytes] = []  # leaf hashes of the current 1024, hashed level by level like the verifier does
    for e in entries:
        if e.index != count:
            raise ExportError(f"entries are not contiguous at {count}", count)
        out.write(entry_line(e.index, e.data, e.leaf_hash))
        chunk.append(e.leaf_hash)
        if len(chunk) == _CHUNK:
            tree.append_subtree(_CHUNK_LEVEL, perfect_root(chunk))
            chunk = []
        count += 1
        if progress and count % 10_000 == 0:
            progress(10_000)
    if count != size:
        raise ExportError(f"expected {size} entries, wrote {count}")
    if progress:
        progress(count % 10_000)
    if root is not None:
        for leaf in chunk:
            tree.append(leaf)
        if tree.root() != root:
            # the stored head (what the checkpoint signs) was computed when the entries were appended; data
            # that no longer hash to it were rewritten in the database since, and must not go out under it
            raise ExportError(
                f"the entries' data do not hash to the checkpoint's root: they hash to {tree.root().hex()}, "
                f"the log's stored head at size {size} is {root.hex()}; an entry was rewritten in the database "
                "(`ledger check` names it)"
            )
    out.write(_line({"checkpoint": signed_checkpoint}))
    return count


def export_log(log: Log, signer: note.Signer, out: BinaryIO, progress: Progress | None = None) -> int:
    """Sign a checkpoint of ``log``'s current head and export every entry up to it.

    The checkpoint goes out with the owner's signature only: a verifier holding just the
    owner's key could not check witnesses' cosignatures, and unchecked bytes could change
    unnoticed. Cosignatures are served with the checkpoint by the node's API. The entries are
    rehashed on the way out: a log whose data no longer hash to the checkpoint's root is refused
    (:class:`ExportError`, raised before the checkpoint line is written).
    """
    parsed = note.parse(log.sign_checkpoint(signer))
    owner_id = signer.verifier().key_id
    own = tuple(sig for sig in parsed.signatures if (sig.name, sig.key_id) == (signer.name, owner_id))
    signed = note.Note(parsed.text, own).render()
    cp = checkpoint_mod.Checkpoint.parse_text(parsed.text)
    return write_export(
        out, log.origin, log.name, log.entries(0, cp.size), cp.size, signed, progress, root=cp.root_hash
    )


@dataclass(frozen=True)
class VerifiedExport:
    """What a verified export proves: this origin's log had these entries at this size and root."""

    origin: str
    log: str
    size: int
    root_hash: bytes
    checkpoint: str


_SEP = b'","leaf_hash":"'
_END = b'"}\n'
_TAIL = len(_SEP) + 64 + len(_END)
_CHUNK_LEVEL = 10  # leaves go into the tree 1024 at a time, hashed level by level
_CHUNK = 1 << _CHUNK_LEVEL
_PARALLEL_MIN_ENTRIES = 200_000


def _entry_fields(line: bytes, index: int) -> tuple[bytes, bytes]:
    """Split a canonical entry line into its base64 data and hex leaf hash, or raise."""
    prefix = b'{"index":%d,"data_b64":"' % index
    tail = line[-_TAIL:]
    if (
        not line.startswith(prefix)
        or len(line) < len(prefix) + _TAIL
        or not tail.startswith(_SEP)
        or not tail.endswith(_END)
    ):
        raise ExportError(f"entry {index}: line is not the canonical entry line for index {index}", index)
    return line[len(prefix) : -_TAIL], tail[len(_SEP) : len(_SEP) + 64]


def _diagnose(line: bytes, index: int) -> None:
    """Raise the precise error for an entry line that failed the fast check."""
    if not line:
        raise ExportError(f"entry {index}: missing (the export ends before it)", index)
    b64, hex_hash = _entry_fields(line, index)
    try:
        data = binascii.a2b_base64(b64, strict_mode=True)
    except binascii.Error as exc:
        raise ExportError(f"entry {index}: data_b64 is not valid base64", index) from exc
    if binascii.b2a_base64(data, newline=False) != b64:
        raise ExportError(f"entry {index}: data_b64 is not canonical base64", index)
    if binascii.hexlify(hashlib.sha256(b"\x00" + data).digest()) != hex_hash:
        raise ExportError(f"entry {index}: leaf_hash does not match the entry's data", index)
    raise ExportError(f"entry {index}: line is not in canonical form", index)


@dataclass
class _Range:
    """The verified entries ``[first, end)``: their 1024-leaf chunk roots and the leftover leaves."""

    first: int
    end: int
    chunk_roots: list[bytes]
    leftover: list[bytes]
    end_offset: int


def _verify_range(stream: BinaryIO, first: int, end: int, progress: Progress | None = None) -> _Range:
    """Check entry lines ``[first, end)`` read from ``stream`` (``first`` a multiple of 1024)."""
    sha256, hexlify, a2b, b2a = hashlib.sha256, binascii.hexlify, binascii.a2b_base64, binascii.b2a_base64
    roots: list[bytes] = []
    chunk: list[bytes] = []
    readline = stream.readline
    for index in range(first, end):
        line = readline()
        prefix = b'{"index":%d,"data_b64":"' % index
        try:
            data = a2b(line[len(prefix) : -_TAIL], strict_mode=True)
        except binascii.Error:
            _diagnose(line, index)
        lh = sha256(b"\x00" + data).digest()
        # Rebuilding the whole canonical line catches every deviation in one comparison.
        if line != prefix + b2a(data, newline=False) + _SEP + hexlify(lh) + _END:
            _diagnose(line, index)
        chunk.append(lh)
        if len(chunk) == _CHUNK:
            roots.append(perfect_root(chunk))
            chunk = []
            if progress and len(roots) % 10 == 0:
                progress(10 * _CHUNK)
    if progress:
        progress((end - first) - (len(roots) // 10) * 10 * _CHUNK)
    return _Range(first, end, roots, chunk, stream.tell())


def _read_header(stream: BinaryIO) -> tuple[str, str, int]:
    header_line = stream.readline()
    try:
        header = json.loads(header_line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ExportError("header: not a JSON line") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ExportError(f"header: format is not {FORMAT}")
    keys = ("format", "origin", "log", "size")
    if set(header) != set(keys) or _line({k: header[k] for k in keys}) != header_line:
        raise ExportError("header: not in canonical form")
    origin, log_name, size = header["origin"], header["log"], header["size"]
    if (
        not isinstance(origin, str)
        or not isinstance(log_name, str)
        or not isinstance(size, int)
        or isinstance(size, bool)
        or size < 0
    ):
        raise ExportError("header: bad field types")
    if origin.rsplit("/", 1)[-1] != log_name:
        raise ExportError(f"header: log {log_name!r} is not the last segment of origin {origin!r}")
    return origin, log_name, size


def _finish(
    stream: BinaryIO, ranges: list[_Range], verifier: note.Verifier, origin: str, log_name: str, size: int
) -> VerifiedExport:
    cr = CompactRange()
    for r in ranges:
        for root in r.chunk_roots:
            cr.append_subtree(_CHUNK_LEVEL, root)
        for lh in r.leftover:
            cr.append(lh)
    line = stream.readline()
    try:
        last = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ExportError(f"entry {size}: found where the checkpoint line was expected", size) from exc
    if not isinstance(last, dict) or set(last) != {"checkpoint"} or not isinstance(last["checkpoint"], str):
        raise ExportError(f"entry {size}: found where the checkpoint line was expected", size)
    if _line(last) != line:
        raise ExportError("checkpoint: line is not in canonical form")
    if stream.read(1):
        raise ExportError("trailing data after the checkpoint line")
    signed = last["checkpoint"]
    try:
        cp, parsed = checkpoint_mod.open_checkpoint(signed, verifier)
    except LedgerError as exc:
        raise ExportError(f"checkpoint: {exc}") from exc
    if len(parsed.signatures) != 1:
        raise ExportError("checkpoint: an export carries exactly one signature, the log owner's")
    if cp.origin != origin:
        raise ExportError(f"checkpoint: origin {cp.origin!r} is not the header's {origin!r}")
    if cp.size != size:
        raise ExportError(f"checkpoint: size {cp.size} is not the header's {size}")
    root = cr.root()
    if root != cp.root_hash:
        raise ExportError(f"root: entries hash to {root.hex()}, the checkpoint says {cp.root_hash.hex()}")
    return VerifiedExport(origin, log_name, size, root, signed)


def verify_export(stream: BinaryIO, verifier: note.Verifier, progress: Progress | None = None) -> VerifiedExport:
    """Check an export offline: every leaf hash, the root, the size and the signature.

    Raises :class:`ExportError` naming the first bad entry index, or the failing check.
    """
    origin, log_name, size = _read_header(stream)
    entries = _verify_range(stream, 0, size, progress)
    return _finish(stream, [entries], verifier, origin, log_name, size)


def _index_of(line: bytes) -> int | None:
    if not line.startswith(b'{"index":'):
        return None
    digits = line[9 : line.find(b",", 9)]
    return int(digits) if digits.isdigit() else None


def _split_points(path: Path, data_start: int, size: int, parts: int) -> list[tuple[int, int]] | None:
    """(byte offset, entry index) where each part starts, on 1024-entry boundaries; None if unclear."""
    total = path.stat().st_size
    points = [(data_start, 0)]
    with open(path, "rb") as f:
        for j in range(1, parts):
            f.seek(data_start + (total - data_start) * j // parts)
            f.readline()  # skip to the start of the next whole line
            while True:
                offset = f.tell()
                index = _index_of(f.readline())
                if index is None or index >= size:
                    return None  # malformed or past the entries: let the serial check name the fault
                if index % _CHUNK == 0:
                    break
            if index <= points[-1][1]:
                return None
            points.append((offset, index))
    return points


def _verify_part(path: str, offset: int, first: int, end: int) -> _Range:
    with open(path, "rb") as f:
        f.seek(offset)
        return _verify_range(f, first, end)


def verify_export_file(
    path: Path, verifier: note.Verifier, progress: Progress | None = None, workers: int | None = None
) -> VerifiedExport:
    """:func:`verify_export` on a file, splitting large exports across processes.

    Each process checks a contiguous run of entry lines that starts on a 1024-entry boundary
    and returns the roots of its 1024-leaf chunks; the runs must meet byte for byte, so the
    result and the first bad index reported are exactly those of the serial check.
    """
    workers = workers or min(4, os.cpu_count() or 1)
    with open(path, "rb") as f:
        origin, log_name, size = _read_header(f)
        points = _split_points(path, f.tell(), size, workers) if workers > 1 and size >= _PARALLEL_MIN_ENTRIES else None
        if points is None:
            return _finish(f, [_verify_range(f, 0, size, progress)], verifier, origin, log_name, size)
        bounds = [*(index for _, index in points[1:]), size]
        ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
        with ProcessPoolExecutor(len(points), mp_context=ctx) as pool:
            futures = [
                pool.submit(_verify_part, str(path), off, first, end)
                for (off, first), end in zip(points, bounds, strict=True)
            ]
            results: list[_Range] = []
            errors: list[ExportError] = []
            for fut in futures:
                try:
                    results.append(fut.result())
                except ExportError as exc:
                    errors.append(exc)
                if progress and results and not errors:
                    progress(results[-1].end - results[-1].first)
        if errors:
            raise min(errors, key=lambda e: e.index if e.index is not None else size)
        for r, (next_offset, _) in zip(results, points[1:], strict=False):
            if r.end_offset != next_offset:  # a line inserted between two runs
                raise ExportError(f"entry {r.end}: unexpected line before it", r.end)
        f.seek(results[-1].end_offset)
        return _finish(f, results, verifier, origin, log_name, size)
