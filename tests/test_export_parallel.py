"""Verifying a large export file across processes gives exactly the serial verdict."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ledger import export, note
from ledger.checkpoint import Checkpoint
from ledger.compact import CompactRange
from ledger.errors import ExportError
from ledger.rfc6962 import leaf_hash
from ledger.storage import Entry

SIGNER = note.Signer.generate("p.example")
N = 5000


@pytest.fixture(autouse=True)
def small_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "_PARALLEL_MIN_ENTRIES", 1000)


@pytest.fixture(scope="module")
def export_bytes() -> bytes:
    datas = [f"entry {i} ".encode() * (i % 7 + 1) for i in range(N)]
    entries = [Entry(i, d, leaf_hash(d)) for i, d in enumerate(datas)]
    cr = CompactRange()
    for e in entries:
        cr.append(e.leaf_hash)
    buf = io.BytesIO()
    signed = Checkpoint("p.example/audit", N, cr.root()).sign(SIGNER)
    export.write_export(buf, "p.example/audit", "audit", entries, N, signed)
    return buf.getvalue()


def _write(tmp_path: Path, raw: bytes) -> Path:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(raw)
    return path


def _serial_error(raw: bytes) -> ExportError:
    with pytest.raises(ExportError) as caught:
        export.verify_export(io.BytesIO(raw), SIGNER.verifier())
    return caught.value


@pytest.mark.parametrize("workers", [2, 3])
def test_parallel_verification_gives_the_serial_result(tmp_path: Path, export_bytes: bytes, workers: int) -> None:
    serial = export.verify_export(io.BytesIO(export_bytes), SIGNER.verifier())
    parallel = export.verify_export_file(_write(tmp_path, export_bytes), SIGNER.verifier(), workers=workers)
    assert parallel == serial


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
def test_parallel_verification_names_the_same_first_bad_index(
    tmp_path: Path, export_bytes: bytes, fraction: float
) -> None:
    lines = export_bytes.splitlines(keepends=True)
    bad = int(N * fraction)
    line = lines[1 + bad]
    lines[1 + bad] = line[:30] + (b"A" if line[30:31] != b"A" else b"B") + line[31:]
    raw = b"".join(lines)
    with pytest.raises(ExportError) as caught:
        export.verify_export_file(_write(tmp_path, raw), SIGNER.verifier(), workers=2)
    assert caught.value.index == _serial_error(raw).index == bad


def test_a_line_inserted_where_two_runs_meet_is_detected(tmp_path: Path, export_bytes: bytes) -> None:
    lines = export_bytes.splitlines(keepends=True)
    lines.insert(1 + 2048, lines[1 + 2047])
    with pytest.raises(ExportError):
        export.verify_export_file(_write(tmp_path, b"".join(lines)), SIGNER.verifier(), workers=2)


def test_a_truncated_file_is_detected_in_parallel_mode(tmp_path: Path, export_bytes: bytes) -> None:
    with pytest.raises(ExportError):
        export.verify_export_file(_write(tmp_path, export_bytes[: len(export_bytes) * 2 // 3]), SIGNER.verifier())
