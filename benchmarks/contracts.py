"""Anchors per second and gas per operation of the alliance contracts.

On the embedded chain (py-evm through web3's EthereumTesterProvider) and, when an `anvil` binary is
on PATH, on anvil started on 127.0.0.1 for the run (the same client code over JSON-RPC).

    python benchmarks/contracts.py                 # 200 anchors per chain
    python benchmarks/contracts.py --anchors 50
    python benchmarks/contracts.py --write-docs
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from statistics import fmean

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the repository's packages, not siblings

from rich.console import Console
from rich.table import Table
from web3 import Web3

from benchmarks.httpload import replace_section
from contracts.client import Alliance, Chain
from contracts.devchain import INSTALL_HINT, anvil

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
MD_START, MD_END = "<!-- contracts:start -->", "<!-- contracts:end -->"
out = Console()


def measure(chain: Chain, anchors: int) -> dict[str, object]:
    """Deploy, register three brands, anchor ``anchors`` times, settle one window; rates and gas."""
    owner, air, shop, cafe = chain.accounts[:4]
    gas: dict[str, list[int]] = {}

    def note(op: str, sent) -> None:  # type: ignore[no-untyped-def]
        gas.setdefault(op, []).append(sent.gas_used)

    t0 = time.perf_counter()
    deployed = Alliance.deploy(chain, owner)
    deploy_s = time.perf_counter() - t0
    for brand, node_id in ((air, "airline.example"), (shop, "shop.example"), (cafe, "cafe.example")):
        note("register a brand", deployed.add_brand(brand, node_id, owner))
    t0 = time.perf_counter()
    for i in range(1, anchors + 1):
        sent = deployed.post_anchor("airline.example/audit", i * 100, Web3.keccak(text=str(i)), air)
        note("anchor (first of a log)" if i == 1 else "anchor (later)", sent)
    anchor_s = time.perf_counter() - t0
    window = Web3.keccak(text="window-1")
    brands = [air, shop, cafe]
    for i, a in enumerate(brands):
        for b in brands[i + 1 :]:
            statement = Web3.keccak(text=f"{a}{b}")
            note("statement (first side)", deployed.post_statement(window, b, statement, a))
            note("statement (confirming side)", deployed.post_statement(window, a, statement, b))
    note("close a window (3 brands)", deployed.close_window(window, [(air, 5), (shop, -2), (cafe, -3)], air))
    return {"anchors_per_s": anchors / anchor_s, "deploy_s": deploy_s, "gas": gas}


def main(argv: list[str] | None = None) -> int:
    """Run on each chain available and print (optionally write) the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--anchors", type=int, default=200, help="anchors per chain")
    ap.add_argument("--write-docs", action="store_true", help="rewrite the contracts section of docs/benchmarks.md")
    args = ap.parse_args(argv)
    results = {"py-evm (embedded)": measure(Chain.embedded(), args.anchors)}
    with anvil() as chain:
        if chain is not None:
            results["anvil"] = measure(chain, args.anchors)
    table = Table(title=f"Alliance contracts: {args.anchors} anchors per chain, gas per operation")
    table.add_column("operation")
    for name in results:
        table.add_column(name, justify="right")
    rows = [("anchors per second", [f"{r['anchors_per_s']:.1f}" for r in results.values()])]
    ops = list(next(iter(results.values()))["gas"])  # type: ignore[call-overload]
    for op in ops:
        rows.append((f"gas: {op}", [f"{fmean(r['gas'][op]):,.0f}" for r in results.values()]))  # type: ignore[index]
    for label, cells in rows:
        table.add_row(label, *cells)
    out.print(table)
    missing = "" if "anvil" in results else f"{INSTALL_HINT}: py-evm only"
    if missing:
        out.print(missing)
    if args.write_docs:
        md = ["| operation | " + " | ".join(results) + " |", "|---|" + "---|" * len(results)]
        md += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
        shown = " ".join(a for a in (argv or sys.argv[1:]) if a != "--write-docs")
        section = (
            "\n".join(md)
            + (f"\n\n{missing}" if missing else "")
            + (f"\n\n`python benchmarks/contracts.py {shown}`, {datetime.now(UTC):%Y-%m-%d}.\n")
        )
        replace_section(DOCS, MD_START, MD_END, "Contracts", section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
