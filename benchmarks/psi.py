"""Private set intersection: ours (ristretto255 through libsodium) against openmined-psi, same run.

For each size n, two sets of n normalised phone numbers that share half of them; every protocol
computes the exact intersection (checked against a plain set intersection) and is timed end to
end in this one process, both sides included. Per element = wall time / 2n (each side's items).

- ours, 1 thread, and ours with a thread per core (libsodium releases the GIL);
- openmined-psi 2.0.6 (ECDH over P-256, Google's C++ through pybind11, one thread), where only
  the client learns the intersection (ours: both sides, with alignment ids).

openmined-psi is in the ``bench`` extra, not in ``dev`` (it pins protobuf 6.30.2):

    pip install -e '.[dev,bench]'
    python benchmarks/psi.py                     # 1,000, 10,000 and 100,000 per side
    python benchmarks/psi.py --sizes 1000 10000  # quicker
    python benchmarks/psi.py --write-docs        # also rewrite the PSI section of docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the repository's packages, not siblings

from rich.console import Console
from rich.table import Table

from benchmarks.httpload import replace_section
from federation.psi import Party, joint_salt
from federation.sodium import BINDING

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
MD_START, MD_END = "<!-- psi:start -->", "<!-- psi:end -->"
out = Console()


def phones(start: int, stop: int) -> list[bytes]:
    """Distinct numbers in the E.164 form the node stores (``+86`` and eleven digits)."""
    return [f"+86138{i:08d}".encode() for i in range(start, stop)]


def ours(a: list[bytes], b: list[bytes], workers: int) -> set[bytes]:
    """Both sides of a run, one after the other, each side's curve work on ``workers`` threads."""
    salt = joint_salt(os.urandom(32), os.urandom(32))
    left, right = Party(a, salt, workers), Party(b, salt, workers)
    left_points, right_points = left.blinded(), right.blinded()
    right_twice, left_twice = left.reblind(right_points), right.reblind(left_points)
    result = left.finish(left_twice, right_twice, minimum=0)
    right.finish(right_twice, left_twice, minimum=0)
    return {a[i] for i in result.ids.values()}


def openmined(a: list[bytes], b: list[bytes]) -> set[bytes]:
    """openmined-psi's client (holding ``a``) and server (holding ``b``); the client learns the result."""
    import private_set_intersection.python as omp  # type: ignore[import-not-found]

    client, server = omp.client.CreateWithNewKey(True), omp.server.CreateWithNewKey(True)
    xs, ys = [x.decode() for x in a], [y.decode() for y in b]
    setup = server.CreateSetupMessage(0.0, len(xs), ys, omp.DataStructure.RAW)
    response = server.ProcessRequest(client.CreateRequest(xs))
    return {a[i] for i in client.GetIntersection(setup, response)}


def timed(run: Callable[[], set[bytes]], truth: set[bytes]) -> float:
    """Seconds for ``run``, which must find exactly ``truth``."""
    start = time.perf_counter()
    found = run()
    seconds = time.perf_counter() - start
    if found != truth:
        raise SystemExit(f"wrong intersection: {len(found)} found, {len(truth)} expected")
    return seconds


def main(argv: list[str] | None = None) -> int:
    """Run, print the table, optionally write the docs."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000], help="items per side")
    ap.add_argument("--write-docs", action="store_true", help="rewrite the PSI section of docs/benchmarks.md")
    args = ap.parse_args(argv)
    try:
        import private_set_intersection.python  # type: ignore[import-not-found]  # noqa: F401

        reference = True
    except ImportError:
        reference = False
        out.print("[yellow]openmined-psi is not installed (pip install -e '.[bench]'): no reference column[/yellow]")
    cores = os.cpu_count() or 1
    table = Table(title=f"PSI, n items per side, half shared ({BINDING}; {cores} cores)")
    cols = ["n per side", "ours, 1 thread", f"ours, {cores} threads", "openmined-psi", "ours vs openmined"]
    for col in cols:
        table.add_column(col, justify="right")
    md = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    ratios: list[float] = []
    last: tuple[int, float] | None = None
    for n in args.sizes:
        a, b = phones(0, n), phones(n // 2, n // 2 + n)
        truth = set(a) & set(b)
        one = timed(lambda a=a, b=b: ours(a, b, 1), truth)
        many = timed(lambda a=a, b=b: ours(a, b, cores), truth)
        ref = timed(lambda a=a, b=b: openmined(a, b), truth) if reference else None

        def cell(seconds: float | None, n: int = n) -> str:
            return "-" if seconds is None else f"{seconds:.2f} s ({seconds / (2 * n) * 1e6:.0f} µs/item)"

        ratio = "-" if ref is None else f"{ref / many:.2f}x (1 thread: {ref / one:.2f}x)"
        if ref is not None:
            ratios.append(ref / many)
        cells = [f"{n:,}", cell(one), cell(many), cell(ref), ratio]
        table.add_row(*cells)
        md.append("| " + " | ".join(cells) + " |")
        last = (n, many)
    out.print(table)
    lines = []
    if ratios:
        lines.append(
            f"throughput per item against openmined-psi: {min(ratios):.2f}x at worst (goal: at least 1.2x) - "
            + ("met" if min(ratios) >= 1.2 else "MISSED")
        )
    if last is not None:
        lines.append(f"{last[0]:,} x {last[0]:,} on this machine: {last[1]:.1f} s, both sides in one process")
    for line in lines:
        out.print(line)
    if args.write_docs:
        shown = " ".join(x for x in (argv or sys.argv[1:]) if x != "--write-docs")
        section = (
            "\n".join(md)
            + "\n\n"
            + "\n".join(f"- {line}" for line in lines)
            + f"\n\n`{f'python benchmarks/psi.py {shown}'.strip()}`"
            + f", {datetime.now(UTC):%Y-%m-%d}.\n"
        )
        replace_section(DOCS, MD_START, MD_END, "Private set intersection", section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
