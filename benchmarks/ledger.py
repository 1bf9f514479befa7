"""Benchmarks of the ledger: durable appends, proofs, export verification and checkpoints.

Every figure is measured in one run and, where there is one, next to a reference measured
in the same run (raw sqlite3, a bare SHA-256 loop, raw Ed25519), because this machine is
shared and noisy: compare ratios, not absolute times across runs.

    python benchmarks/ledger.py                                  # full run, 1,000,000 entries
    python benchmarks/ledger.py --quick                          # 100,000 entries, fewer repetitions
    python benchmarks/ledger.py --markdown docs/benchmarks.md    # also rewrite the table section there

The large log is built once (synchronous=OFF, batches of 10,000) and cached under the temp
dir, keyed by its size; building is not measured.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import hashlib
import json
import math
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# This script is named like the package it measures, and Python puts the script's own folder
# first on the import path: drop it so that `import ledger` finds the package, not this file.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ledger import export as export_mod
from ledger.checkpoint import Checkpoint, open_checkpoint
from ledger.compact import CompactRange
from ledger.export import export_log, verify_export
from ledger.note import Signer
from ledger.proof import verify_consistency, verify_inclusion
from ledger.rfc6962 import leaf_hash
from ledger.storage import INDEX_BITS, LedgerStore, Log, create_engine
from node.core.progress import progress_bar

ENTRY_BYTES = 200
SEED = 6962
LOG_NAME = "bench"
ORIGIN = "bench.example/ledger/bench"
BUILD_BATCH = 10_000
CACHE_VERSION = 1
MD_START = "<!-- ledger-benchmark:start -->"
MD_END = "<!-- ledger-benchmark:end -->"

out = Console()
if not out.is_terminal:
    out.width = 200  # a file or pipe: do not fold the table to 80 columns
err = Console(stderr=True)


# --- results -------------------------------------------------------------------------------


@dataclass
class Row:
    figure: str
    measured: str
    reference: str = "—"
    ratio: str = "—"
    goal: str = "—"
    met: bool | None = None

    def cells(self) -> list[str]:
        met = "—" if self.met is None else ("yes" if self.met else "no")
        return [self.figure, self.measured, self.reference, self.ratio, self.goal, met]


COLUMNS = ["figure", "measured", "reference", "ratio", "goal", "met?"]


def rich_table(rows: Sequence[Row], title: str) -> Table:
    table = Table(title=title, show_lines=True)
    for name in COLUMNS:
        table.add_column(name, overflow="fold", justify="left" if name in ("figure", "goal") else "right")
    for row in rows:
        cells = [Text(c) for c in row.cells()]
        if row.met is not None:
            cells[-1].stylize("green" if row.met else "red")
        table.add_row(*cells)
    return table


def markdown_table(rows: Sequence[Row]) -> str:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|")

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(esc(c) for c in row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def write_markdown(path: Path, section: str) -> None:
    """Replace the marked section of ``path`` (or append it, or create the file)."""
    block = f"{MD_START}\n{section.strip()}\n{MD_END}"
    if path.exists():
        text = path.read_text(encoding="utf-8")
        if MD_START in text and MD_END in text:
            pre, rest = text.split(MD_START, 1)
            _, post = rest.split(MD_END, 1)
            text = pre + block + post
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = f"# Ledger benchmarks\n\n{block}\n"
    path.write_text(text, encoding="utf-8")


# --- helpers -------------------------------------------------------------------------------


def make_entries(count: int, seed: int = SEED) -> list[bytes]:
    """``count`` deterministic pseudo-random entries of ``ENTRY_BYTES`` bytes."""
    blob = random.Random(seed).randbytes(count * ENTRY_BYTES)
    return [blob[i : i + ENTRY_BYTES] for i in range(0, len(blob), ENTRY_BYTES)]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..100)."""
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@contextmanager
def phase(name: str) -> Iterator[None]:
    err.print(f"[bold]·[/bold] {name} …", highlight=False)
    t0 = time.perf_counter()
    yield
    err.print(f"  done in {time.perf_counter() - t0:.1f} s", highlight=False, style="dim")


DETAILS: list[str] = []


def detail(line: str) -> None:
    """Note a per-run detail: printed now and listed under the Markdown table."""
    DETAILS.append(line)
    err.print(f"  {line}", style="dim", highlight=False)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def fmt_rate(per_s: float, unit: str) -> str:
    return f"{per_s:,.0f} {unit}/s"


# --- 1. durable appends ----------------------------------------------------------------------


def ledger_append_run(workdir: Path, batches: Sequence[Sequence[bytes]], run: int) -> float:
    """Seconds to append every batch to a fresh ledger on SQLite (WAL, synchronous=FULL)."""
    path = workdir / f"append-ledger-{run}.db"
    engine = create_engine(sqlite_url(path), sqlite_synchronous="FULL")
    try:
        store = LedgerStore(engine)
        store.create_schema()
        log = store.create_log(LOG_NAME, ORIGIN)
        with engine.connect() as conn:  # make sure we measure what we claim
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
        if (str(mode).lower(), sync) != ("wal", 2):
            raise RuntimeError(f"ledger engine is journal_mode={mode} synchronous={sync}, expected wal/2 (FULL)")
        gc.collect()
        t0 = time.perf_counter()
        for batch in batches:
            log.append(batch)
        elapsed = time.perf_counter() - t0
        if log.size != sum(len(b) for b in batches):
            raise RuntimeError("ledger append run lost entries")
        return elapsed
    finally:
        store.close()
        remove_sqlite_files(path)


def remove_sqlite_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def raw_append_run(workdir: Path, batches: Sequence[Sequence[bytes]], run: int) -> float:
    """Seconds to insert the same bytes with plain sqlite3 (WAL, synchronous=FULL, one commit per batch)."""
    path = workdir / f"append-raw-{run}.db"
    conn = sqlite3.connect(path)
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        conn.execute("PRAGMA synchronous=FULL")
        sync = conn.execute("PRAGMA synchronous").fetchone()[0]
        if (mode.lower(), sync) != ("wal", 2):
            raise RuntimeError(f"raw sqlite3 is journal_mode={mode} synchronous={sync}, expected wal/2 (FULL)")
        conn.execute("CREATE TABLE entry (idx INTEGER PRIMARY KEY, data BLOB)")
        conn.commit()
        gc.collect()
        idx = 0
        t0 = time.perf_counter()
        for batch in batches:
            rows = zip(range(idx, idx + len(batch)), batch, strict=True)
            conn.executemany("INSERT INTO entry (idx, data) VALUES (?, ?)", rows)
            conn.commit()
            idx += len(batch)
        elapsed = time.perf_counter() - t0
        if conn.execute("SELECT count(*) FROM entry").fetchone()[0] != idx:
            raise RuntimeError("raw append run lost rows")
        return elapsed
    finally:
        conn.close()
        remove_sqlite_files(path)


def shaped_append_run(workdir: Path, batches: Sequence[Sequence[tuple]], run: int) -> float:
    """Seconds to insert ledger-shaped rows (the ledger's own schema, hashes precomputed) with plain
    sqlite3, WAL + synchronous=FULL, one commit per batch: what the ledger's rows cost SQLite alone."""
    path = workdir / f"append-shaped-{run}.db"
    engine = create_engine(sqlite_url(path), sqlite_synchronous="FULL")
    try:
        store = LedgerStore(engine)
        store.create_schema()
        log_id = store.create_log(LOG_NAME, ORIGIN).id
    finally:
        engine.dispose()
    if log_id != 1:
        raise RuntimeError(f"expected log id 1, got {log_id}")
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        gc.collect()
        t0 = time.perf_counter()
        for batch in batches:
            conn.executemany("INSERT INTO ledger_entry (entry_key, data, subtree_hashes) VALUES (?, ?, ?)", batch)
            conn.commit()
        return time.perf_counter() - t0
    finally:
        conn.close()
        remove_sqlite_files(path)


def ledger_shaped_rows(batches: Sequence[Sequence[bytes]]) -> list[list[tuple]]:
    """The rows ``Log.append`` writes for these batches into log 1 (computed here, not timed)."""
    frontier = CompactRange()
    out_batches = []
    for batch in batches:
        rows = []
        for data in batch:
            lh = leaf_hash(data)
            completed = frontier.append(lh)
            rows.append(((1 << INDEX_BITS) + frontier.size - 1, data, b"".join(completed)))
        out_batches.append(rows)
    return out_batches


def bench_appends(workdir: Path, n_batches: int, batch_size: int, reps: int) -> list[Row]:
    entries = make_entries(n_batches * batch_size, seed=SEED + 1)
    batches = [entries[i : i + batch_size] for i in range(0, len(entries), batch_size)]
    shaped = ledger_shaped_rows(batches)
    total = len(entries)
    runs: dict[str, list[float]] = {"ledger": [], "raw": [], "shaped": []}
    order = [
        ("ledger", lambda rep: ledger_append_run(workdir, batches, rep)),
        ("raw", lambda rep: raw_append_run(workdir, batches, rep)),
        ("shaped", lambda rep: shaped_append_run(workdir, shaped, rep)),
    ]
    with progress_bar(err, remaining=True) as bar:
        task = bar.add_task("durable appends (ledger / raw / shaped, interleaved)", total=len(order) * reps)
        for rep in range(reps):
            # Rotate which goes first so drift on a noisy machine does not favour one side.
            for name, fn in order[rep % len(order) :] + order[: rep % len(order)]:
                runs[name].append(fn(rep))
                bar.advance(task)
    rate = {name: total / statistics.median(times) for name, times in runs.items()}
    detail(
        f"durable appends of {total:,} entries, seconds per run: "
        + "; ".join(f"{name} {', '.join(f'{s:.2f}' for s in times)}" for name, times in runs.items())
    )
    ratio = rate["ledger"] / rate["raw"]
    raw_ref = f"{fmt_rate(rate['raw'], 'rows')} (raw sqlite3)"
    return [
        Row(
            f"durable appends/s (batches of {batch_size}; {n_batches} batches, median of {reps})",
            fmt_rate(rate["ledger"], "entries"),
            raw_ref,
            f"{ratio:.2f}",
            "ledger/raw >= 0.5",
            ratio >= 0.5,
        ),
        Row(
            "raw sqlite3 inserts of ledger-shaped rows (the ledger's schema, hashes precomputed; info: SQLite's share)",
            fmt_rate(rate["shaped"], "rows"),
            raw_ref,
            f"{rate['shaped'] / rate['raw']:.2f}",
        ),
    ]


# --- the big log ------------------------------------------------------------------------------


@dataclass
class BigLog:
    store: LedgerStore
    log: Log
    signer: Signer
    size: int
    root: bytes


def open_or_build(cache_dir: Path, entries: Sequence[bytes], rebuild: bool) -> BigLog:
    """Open the cached log of ``len(entries)`` entries, or build it (not measured)."""
    size = len(entries)
    db = cache_dir / "ledger.db"
    meta_path = cache_dir / "meta.json"
    skey_path = cache_dir / "signer.skey"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    want = {"version": CACHE_VERSION, "size": size, "seed": SEED, "entry_bytes": ENTRY_BYTES}
    if not rebuild and skey_path.exists() and db.exists() and {k: meta.get(k) for k in want} == want:
        engine = create_engine(sqlite_url(db))
        store = LedgerStore(engine)
        try:
            log = store.log(LOG_NAME)
            head = log.head()
        except Exception:  # any damage to the cache means a rebuild
            head = None
        if head is not None and head.size == size and head.root_hash.hex() == meta.get("root"):
            err.print(f"  using cached log {db} ({size:,} entries)", style="dim", highlight=False)
            return BigLog(store, log, Signer.from_skey(skey_path.read_text()), size, head.root_hash)
        engine.dispose()

    shutil.rmtree(cache_dir, ignore_errors=True)
    cache_dir.mkdir(parents=True)
    signer = Signer.generate("bench.example")
    skey_path.write_text(signer.to_skey())
    engine = create_engine(sqlite_url(db), sqlite_synchronous="OFF")
    store = LedgerStore(engine)
    store.create_schema()
    log = store.create_log(LOG_NAME, ORIGIN)
    with progress_bar(err, remaining=True) as bar:
        task = bar.add_task(f"building {size:,}-entry log (cached, not measured)", total=size)
        for i in range(0, size, BUILD_BATCH):
            result = log.append(entries[i : i + BUILD_BATCH])
            bar.update(task, completed=result.size)
    store.close()
    head_root = result.root_hash
    meta_path.write_text(json.dumps({**want, "root": head_root.hex()}))
    engine = create_engine(sqlite_url(db))
    store = LedgerStore(engine)
    return BigLog(store, store.log(LOG_NAME), signer, size, head_root)


# --- 2. proofs ------------------------------------------------------------------------------------


def time_calls(fn: Callable[[int], object], args: Sequence[int], budget_s: float) -> list[float]:
    """Per-call seconds of ``fn(arg)`` (perf_counter), stopping early after ``budget_s``."""
    times: list[float] = []
    pc = time.perf_counter
    deadline = pc() + budget_s
    for a in args:
        t0 = pc()
        fn(a)
        t1 = pc()
        times.append(t1 - t0)
        if t1 > deadline:
            break
    times.sort()
    return times


def bench_proofs(big: BigLog, samples: int, budget_s: float) -> list[Row]:
    log, size = big.log, big.size
    rng = random.Random(SEED + 2)
    # Correctness spot checks, outside the timing.
    for index in rng.sample(range(size), 5):
        verify_inclusion(index, size, log.entry(index).leaf_hash, log.inclusion_proof(index, size), big.root)
    for size1 in rng.sample(range(1, size), 3):
        verify_consistency(size1, size, log.root_at(size1), big.root, log.consistency_proof(size1, size))

    for index in rng.sample(range(size), 50):  # warm the connection pool and statement cache
        log.inclusion_proof(index, size)
    gc.collect()
    incl = time_calls(lambda i: log.inclusion_proof(i, size), [rng.randrange(size) for _ in range(samples)], budget_s)
    gc.collect()
    cons = time_calls(
        lambda s1: log.consistency_proof(s1, size), [rng.randrange(1, size) for _ in range(samples)], budget_s
    )

    def row(what: str, times: list[float], goal: bool) -> Row:
        p50, p99 = percentile(times, 50) * 1e3, percentile(times, 99) * 1e3
        detail(f"{what} proofs: mean {statistics.fmean(times) * 1e3:.2f} ms, max {times[-1] * 1e3:.2f} ms")
        return Row(
            f"{what}-proof generation at {size:,} entries, p50 / p99 ({len(times):,} calls)",
            f"{p50:.2f} / {p99:.2f} ms",
            goal="p99 < 5 ms" if goal else "— (extra)",
            met=(p99 < 5.0) if goal else None,
        )

    return [row("inclusion", incl, True), row("consistency", cons, False)]


# --- 3. export verification --------------------------------------------------------------------


def export_big(big: BigLog, path: Path) -> None:
    with progress_bar(err, remaining=True) as bar, open(path, "wb") as f:
        task = bar.add_task(f"exporting {big.size:,} entries (not measured)", total=big.size)
        count = export_log(big.log, big.signer, f, progress=lambda n: bar.advance(task, n))
    if count != big.size:
        raise RuntimeError(f"export wrote {count} entries, expected {big.size}")


def time_verify(path: Path, big: BigLog) -> float:
    verifier = big.signer.verifier()
    gc.collect()
    t0 = time.perf_counter()
    with open(path, "rb") as f:
        verified = verify_export(f, verifier)
    elapsed = time.perf_counter() - t0
    if verified.size != big.size or verified.root_hash != big.root:
        raise RuntimeError("verify_export returned a different head than the log's")
    return elapsed


def export_workers(size: int) -> int:
    """How many processes verify_export_file uses by default here (it mirrors ledger.export's rule)."""
    threshold = getattr(export_mod, "_PARALLEL_MIN_ENTRIES", 0)
    return min(4, os.cpu_count() or 1) if size >= threshold else 1


def time_verify_file(path: Path, big: BigLog) -> float:
    verifier = big.signer.verifier()
    gc.collect()
    t0 = time.perf_counter()
    verified = export_mod.verify_export_file(path, verifier)
    elapsed = time.perf_counter() - t0
    if verified.size != big.size or verified.root_hash != big.root:
        raise RuntimeError("verify_export_file returned a different head than the log's")
    return elapsed


def time_bare_sha(entries: Sequence[bytes]) -> float:
    sha256 = hashlib.sha256
    gc.collect()
    t0 = time.perf_counter()
    for data in entries:
        sha256(data).digest()
    return time.perf_counter() - t0


def cli_command() -> list[str] | None:
    exe = Path(sys.executable).parent / "alliance-node"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("alliance-node")
    return [found] if found else None


def time_cli_verify(path: Path, big: BigLog) -> float:
    cmd = cli_command()
    if cmd is None:
        raise RuntimeError("alliance-node is not installed")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [*cmd, "ledger", "verify", str(path), "--vkey", big.signer.verifier().to_vkey()],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0 or not proc.stdout.startswith(f"OK {big.size} {big.root.hex()}"):
        raise RuntimeError(f"`alliance-node ledger verify` failed: {proc.stdout}{proc.stderr}")
    return elapsed


def bench_verify(big: BigLog, entries: Sequence[bytes], path: Path, reps: int, with_cli: bool) -> list[Row]:
    runs: dict[str, list[float]] = {"verify_export": [], "verify_export_file": [], "bare SHA-256 loop": []}
    order: list[tuple[str, Callable[[], float]]] = [
        ("verify_export", lambda: time_verify(path, big)),
        ("bare SHA-256 loop", lambda: time_bare_sha(entries)),
        ("verify_export_file", lambda: time_verify_file(path, big)),
    ]
    if with_cli and cli_command() is not None:
        runs["CLI"] = []
        order.append(("CLI", lambda: time_cli_verify(path, big)))
    with progress_bar(err, remaining=True) as bar:
        task = bar.add_task(f"{' / '.join(runs)} (interleaved)", total=len(order) * reps)
        for rep in range(reps):
            for name, fn in order[rep % len(order) :] + order[: rep % len(order)]:
                runs[name].append(fn())
                bar.advance(task)
    median = {name: statistics.median(times) for name, times in runs.items()}
    detail(
        f"verify of {big.size:,} entries, seconds per run: "
        + "; ".join(f"{name} {', '.join(f'{s:.3f}' for s in times)}" for name, times in runs.items())
    )
    bare = median["bare SHA-256 loop"]
    bare_ref = f"{bare:.3f} s (bare loop)"
    n = f"{big.size:,}"

    def row(figure: str, seconds: float, goal: bool) -> Row:
        ratio = seconds / bare
        return Row(
            figure,
            f"{seconds:.2f} s ({big.size / seconds:,.0f} entries/s)",
            bare_ref,
            f"{ratio:.1f}",
            "<= 4" if goal else "—",
            (ratio <= 4) if goal else None,
        )

    rows = [
        row(
            f"`ledger verify` of a {n}-entry export ÷ a bare SHA-256 loop over the same entries "
            f"(verify_export_file, what the CLI calls; {export_workers(big.size)} processes here; median of {reps})",
            median["verify_export_file"],
            True,
        ),
        row(
            f"the same in one process (verify_export on a stream; info, median of {reps})",
            median["verify_export"],
            False,
        ),
    ]
    if "CLI" in median:
        rows.append(
            row(
                f"`alliance-node ledger verify` CLI, whole process incl. start-up (info, median of {reps})",
                median["CLI"],
                False,
            )
        )
    return rows


# --- 4. checkpoints ---------------------------------------------------------------------------


def bench_checkpoints(root: bytes, count: int, rounds: int) -> list[Row]:
    """Checkpoint sign / verify rates next to raw Ed25519 on the same messages, interleaved in rounds."""
    signer = Signer.generate("bench.example")
    verifier = signer.verifier()
    # Reference: raw Ed25519 (the same `cryptography` calls the note code makes) over the same bytes.
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    times = {"sign": 0.0, "raw sign": 0.0, "verify": 0.0, "raw verify": 0.0}
    per_round = max(1, count // rounds)
    pc = time.perf_counter
    for r in range(rounds):
        cps = [Checkpoint(ORIGIN, 1_000_000 + r * per_round + i, root) for i in range(per_round)]
        messages = [cp.text().encode() for cp in cps]
        gc.collect()
        t0 = pc()
        signed = [Checkpoint(cp.origin, cp.size, cp.root_hash).sign(signer) for cp in cps]
        t1 = pc()
        sigs = [key.sign(m) for m in messages]
        t2 = pc()
        for note_text in signed:
            open_checkpoint(note_text, verifier)
        t3 = pc()
        for m, sig in zip(messages, sigs, strict=True):
            public.verify(sig, m)
        t4 = pc()
        times["sign"] += t1 - t0
        times["raw sign"] += t2 - t1
        times["verify"] += t3 - t2
        times["raw verify"] += t4 - t3
    n = per_round * rounds

    def row(what: str, unit: str, key: str) -> Row:
        rate, raw_rate = n / times[key], n / times[f"raw {key}"]
        return Row(
            f"checkpoint {what} rate ({n:,} checkpoints)",
            fmt_rate(rate, unit),
            f"{fmt_rate(raw_rate, unit)} (raw Ed25519, cryptography)",
            f"{rate / raw_rate:.2f}",
        )

    return [row("sign (Checkpoint(...).sign)", "signs", "sign"), row("verify (open_checkpoint)", "verifies", "verify")]


# --- main -----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--size", type=int, default=None, help="entries in the big log (default 1,000,000)")
    p.add_argument("--quick", action="store_true", help="100,000 entries and fewer repetitions")
    p.add_argument("--markdown", type=Path, metavar="PATH", help="also write the table as a section of PATH")
    p.add_argument("--date", default=dt.date.today().isoformat(), help="date written with the Markdown table")
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "ledger-benchmarks",
        help="where the built log is cached",
    )
    p.add_argument("--rebuild", action="store_true", help="rebuild the cached log")
    p.add_argument("--no-cli", action="store_true", help="skip timing the `alliance-node ledger verify` process")
    args = p.parse_args(argv)
    if args.size is None:
        args.size = 100_000 if args.quick else 1_000_000
    if args.size < 2:
        p.error("--size must be at least 2")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    size = args.size
    reps = 1 if args.quick else 3
    n_batches = 50 if args.quick else 200
    samples = 500 if args.quick else 2000
    started = time.perf_counter()
    rows: list[Row] = []

    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
        workdir = Path(tmp)
        with phase(f"1. durable appends: {n_batches} batches of 1,000 x {ENTRY_BYTES} B, {reps} rep(s) each"):
            rows += bench_appends(workdir, n_batches, 1000, reps)

        with phase(f"preparing the {size:,}-entry log"):
            entries = make_entries(size)
            big = open_or_build(args.cache_dir / f"log-{size}", entries, args.rebuild)
            if big.log.entry(0).data != entries[0] or big.log.entry(size - 1).data != entries[-1]:
                raise RuntimeError("the cached log does not hold the entries this run generated; use --rebuild")
            if leaf_hash(entries[-1]) != big.log.entry(size - 1).leaf_hash:
                raise RuntimeError("stored leaf hash mismatch")

        try:
            with phase(f"2. inclusion and consistency proofs at {size:,} entries"):
                rows += bench_proofs(big, samples, budget_s=30)

            export_path = workdir / "export.jsonl"
            with phase("3. export and verify"):
                t0 = time.perf_counter()
                export_big(big, export_path)
                detail(
                    f"export_log wrote {export_path.stat().st_size / 1e6:,.0f} MB in {time.perf_counter() - t0:.1f} s "
                    "(not a goal)"
                )
                rows += bench_verify(big, entries, export_path, reps, with_cli=not args.no_cli)
            export_path.unlink()
        finally:
            big.store.close()
        del entries

        with phase("4. checkpoint sign / verify"):
            rows += bench_checkpoints(big.root, 2000, rounds=4)

    total = time.perf_counter() - started
    title = f"ledger benchmarks, {size:,}-entry log ({os.cpu_count()} cores, {total:.0f} s)"
    out.print(rich_table(rows, title))

    if args.markdown:
        cmd = "python benchmarks/ledger.py" + (" --quick" if args.quick else "")
        if size != (100_000 if args.quick else 1_000_000):
            cmd += f" --size {size}"
        cmd += f" --markdown {args.markdown}"
        section = (
            f"Measured on {args.date} by `{cmd}` (the whole run took {total:.0f} s): "
            f"{size:,}-entry log of {ENTRY_BYTES}-byte entries, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}.\n\n{markdown_table(rows)}\n\n"
            + "".join(f"- {line}\n" for line in DETAILS)
        )
        write_markdown(args.markdown, section)
        err.print(f"wrote the table to {args.markdown}", highlight=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
