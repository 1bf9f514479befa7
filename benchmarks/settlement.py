"""Settlement at volume: how statements, netting and reconciliation grow with the window's exchanges.

For each size (10,000, 100,000 and 1,000,000 exchanges by default), three brands' committed
exchanges in one window are generated straight into two nodes' `exchange` logs (the airline's and
the supermarket's; quotes made by `node.exchange.quotes.make_quote`, signatures stand-ins:
settlement reads the signed bytes and reconciliation checks inclusion proofs, neither checks a
quote's signature again). Generating and appending is not timed. Then, on the airline's node:

- **read**: the window's exchanges from the log (`settled_exchanges` over every entry);
- **statements**: its signed statement with each partner (`statement`, `sign_statement`);
- **netting**: every pair's obligation and the net settlement (`obligations`, `net_settlement`);
- **digest**: what the supermarket answers a digest records call with (`SettlementService.digest_for`:
  one signed Merkle root of the pair's entries, under its signed checkpoint);
- **reconcile**: the airline checks that answer and compares it with the digest of its own log
  (`SettlementService.compare_digest`);
- **proofs** (with `--proofs`, not in the total): the path taken only when the digests differ: every
  pair entry with an inclusion proof (`records_for`), each checked and compared (`compare_records`).

The table gives seconds per step and microseconds per exchange; growth is linear when the last
column stays flat. The goal (issue 18): a 1,000,000-exchange window settled in under 60 s.

    python benchmarks/settlement.py                     # 10k, 100k, 1M
    python benchmarks/settlement.py --sizes 10000,100000
    python benchmarks/settlement.py --write-docs
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the packages, not sibling scripts

from rich.console import Console

from benchmarks.httpload import Report, replace_section
from node.core.progress import progress_bar
from node.demo.alliance import BrandSpec, create_alliance
from node.exchange.quotes import make_quote
from node.exchange.records import CommittedExchange
from node.runtime import Node
from node.settlement.reconcile import settled_exchanges
from node.settlement.statements import Window, net_settlement, obligations, sign_statement, statement

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "benchmarks.md"
MD_START, MD_END = "<!-- settlement:start -->", "<!-- settlement:end -->"
BRANDS = [
    ("airline", Decimal("4.5"), Decimal("0.05")),
    ("supermarket", Decimal(1), Decimal(0)),
    ("coffee", Decimal("0.8"), Decimal("0.02")),
]
APPEND_BATCH = 10_000
out = Console()
err = Console(stderr=True)


def generate(nodes: dict[str, Node], count: int, window: Window, seed: int = 7) -> None:
    """``count`` committed exchanges among the brands in ``window``, appended to the logs of both sides
    (only the airline's and the supermarket's logs are kept: the two nodes measured)."""
    rng = random.Random(seed)
    brands = {key: nodes[key].registry.brand(nodes[key].settings.node_id) for key in nodes}
    keys = list(brands)
    span = (window.end - window.start).total_seconds()
    pending: dict[str, list[bytes]] = {k: [] for k in nodes}
    with progress_bar(err, remaining=True) as bar:
        task = bar.add_task(f"generating {count:,} exchanges", total=count)
        for i in range(count):
            src, dst = rng.sample(keys, 2)
            at = window.start + timedelta(seconds=rng.random() * span)
            quote = make_quote(rng.randint(10, 5000), brands[src], brands[dst], at)
            entry = CommittedExchange(quote, f"link-{i % 5000:05d}", "c2ln", "cmVj").entry()
            for side in (src, dst):
                if side in pending:
                    pending[side].append(entry)
            for side, items in pending.items():
                if len(items) >= APPEND_BATCH:
                    nodes[side].store.log("exchange").append(items)
                    pending[side] = []
            bar.advance(task)
    for side, items in pending.items():
        if items:
            nodes[side].store.log("exchange").append(items)


def measure(air: Node, shop: Node, window: Window, proofs: bool = False) -> dict[str, float]:
    """Seconds per step of settling ``window`` at the airline (and the supermarket's records answer)."""
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    entries = [e.data for e in air.store.log("exchange").entries()]
    exchanges = settled_exchanges(entries)
    times["read"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    mine = [statement(air.settings.node_id, p, exchanges, window) for p in partners(air)]
    for s in mine:
        sign_statement(s, air.signer)
    times["statements"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    net_settlement([o for o in obligations(exchanges, window) if o.fen > 0], window)
    times["netting"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    answer = shop.settlement.digest_for(air.settings.node_id)
    times["digest"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    agreed = air.settlement.compare_digest(shop.settings.node_id, answer)
    times["reconcile"] = time.perf_counter() - t0
    if agreed is None:
        raise SystemExit("the two logs' digests differ")
    if proofs:
        t0 = time.perf_counter()
        mismatch = air.settlement.compare_records(
            shop.settings.node_id, shop.settlement.records_for(air.settings.node_id)
        )
        times["proofs"] = time.perf_counter() - t0
        if not mismatch.agreed:
            raise SystemExit(f"the two logs disagree: {mismatch}")
    return times


def partners(node: Node) -> list[str]:
    """The other brands of the alliance."""
    return [b.node_id for b in node.registry.brands if b.node_id != node.settings.node_id]


def main(argv: list[str] | None = None) -> int:
    """Run every size and print (optionally write) the growth table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000", help="exchanges per window, comma-separated")
    ap.add_argument("--write-docs", action="store_true", help="rewrite the settlement section of docs/benchmarks.md")
    ap.add_argument("--proofs", action="store_true", help="also time the per-record proofs path (not in the total)")
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    steps = ["read", "statements", "netting", "digest", "reconcile"]
    extra = ["proofs"] if args.proofs else []
    report = Report(
        "Settlement of one window at the airline, by the window's exchanges (3 brands, SQLite)",
        ["exchanges", *(f"{s} s" for s in steps), "total s", "µs per exchange", *(f"{s} s" for s in extra)],
    )
    window = Window(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-settlement-") as tmp:
            base = Path(tmp)
            create_alliance(base, [BrandSpec(k, k.title(), v, f, 9) for k, v, f in BRANDS])
            nodes = {k: Node.open(base / k) for k in ("airline", "supermarket")}
            try:
                generate(nodes, size, window)
                err.print(f"settling {size:,} exchanges …")
                times = measure(nodes["airline"], nodes["supermarket"], window, args.proofs)
            finally:
                for n in nodes.values():
                    n.dispose()
        total = sum(times[s] for s in steps)
        report.rows.append(
            [
                f"{size:,}",
                *(f"{times[s]:.2f}" for s in steps),
                f"{total:.2f}",
                f"{total / size * 1e6:.0f}",
                *(f"{times[s]:.2f}" for s in extra),
            ]
        )
    out.print(report.rich())
    if args.write_docs:
        section = (
            f"**{report.title}**\n\n{report.markdown()}\n\n`python benchmarks/settlement.py --sizes {args.sizes}"
            f"{' --proofs' if args.proofs else ''}`, "
            f"{datetime.now(UTC):%Y-%m-%d}.\n"
        )
        replace_section(DOCS, MD_START, MD_END, "Settlement at volume", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
