"""A writer killed with SIGKILL in the middle of a batch leaves the log before or after the batch."""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ledger import note
from ledger.export import export_log, verify_export
from ledger.storage import LedgerStore, create_engine

WRITER = Path(__file__).parent / "helpers" / "crash_writer.py"
BATCH = 2000


def _kill_mid_batch(url: str, rng: random.Random) -> int:
    """Start the writer, let it begin a random number of batches, SIGKILL it; return the last begun size."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    proc = subprocess.Popen([sys.executable, str(WRITER), url, str(BATCH), "64"], stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    begun = last_begin = 0
    target = rng.randint(1, 4)
    deadline = time.monotonic() + 60
    while begun < target and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith(b"BEGIN"):
            begun += 1
            last_begin = int(line.split()[1])
    time.sleep(rng.uniform(0, 0.01))  # lands inside the batch's transaction most of the time
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    return last_begin


SIGNER = note.Signer.generate("crash.example")


def _check_log(url: str) -> int:
    store = LedgerStore(create_engine(url))
    log = store.log("audit")
    head = log.recompute()  # every stored hash and the head agree with the data
    assert head.size % BATCH == 0, f"a partial batch is visible: size {head.size}"
    buf = io.BytesIO()
    export_log(log, SIGNER, buf)
    buf.seek(0)
    assert verify_export(buf, SIGNER.verifier()).size == head.size
    store.close()
    return head.size


def _run(url: str, runs: int, seed: int) -> None:
    rng = random.Random(seed)
    size = 0
    killed_inside_a_batch = 0
    for _ in range(runs):
        last_begin = _kill_mid_batch(url, rng)
        new_size = _check_log(url)
        assert new_size >= size  # nothing committed is ever lost
        assert new_size in (last_begin, last_begin + BATCH)
        killed_inside_a_batch += new_size == last_begin
        size = new_size
    assert killed_inside_a_batch, "no kill landed inside a batch: the test proved nothing"


def test_sqlite_log_survives_sigkill_mid_batch(tmp_path: Path) -> None:
    _run(f"sqlite:///{tmp_path / 'crash.db'}", runs=6, seed=2)


@pytest.mark.postgres
def test_postgres_log_survives_sigkill_mid_batch(pg_database: str) -> None:
    _run(pg_database, runs=4, seed=3)


@pytest.mark.slow
def test_sqlite_log_survives_many_sigkills(tmp_path: Path) -> None:
    _run(f"sqlite:///{tmp_path / 'crash.db'}", runs=40, seed=7)
