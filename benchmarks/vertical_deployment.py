"""A vertical run's rounds: Flower's Deployment Engine against the in-process Grid, same nodes, same run.

Two brands' nodes (``node.demo.vertical.shared_pair``: shared members with the same phone number and
both consents) are aligned by PSI over signed peer calls, then trained for ``--rounds`` rounds twice:
on the in-process Grid, and on the Deployment Engine (a SuperLink, one SuperNode for the partner,
TLS and SuperNode authentication; every message is a fresh ClientApp process). Seconds per round is
the wall time from the start of the label holder's run to its last round, over the rounds.

    python benchmarks/vertical_deployment.py                 # 2 rounds, 600 shared members
    python benchmarks/vertical_deployment.py --write-docs    # also rewrite its section of docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the repository's packages, not siblings

from rich.console import Console
from rich.table import Table

from benchmarks.httpload import replace_section
from federation.vertical_server import VerticalSettings
from node.demo.vertical import shared_pair
from node.learning.rows import ChurnWindow
from node.learning.vertical_run import vertical_nodes

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
MD_START, MD_END = "<!-- vertical-deployment:start -->", "<!-- vertical-deployment:end -->"


def main() -> None:
    """Measure both ways and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each run (default 2)")
    parser.add_argument("--shared", type=int, default=600, help="members of both brands (default 600)")
    parser.add_argument("--write-docs", action="store_true", help="rewrite the section in docs/benchmarks.md")
    args = parser.parse_args()
    logging.getLogger("flwr").setLevel(logging.WARNING)
    console = Console()
    today = datetime.now(UTC).date()
    window = ChurnWindow(today - timedelta(days=180), today)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        nodes = shared_pair(Path(tmp) / "alliance", args.shared, 60)
        try:
            for mode in ("in process", "Deployment Engine"):
                settings = VerticalSettings(run="bench", rounds=args.rounds, epochs=5)
                name = f"bench-{mode.split()[0].lower()}"
                started = time.monotonic()
                outcome = vertical_nodes(
                    nodes["airline"], [nodes["shop"]], name, window, settings,
                    deployment=Path(tmp) / "flower" if mode != "in process" else None,
                )
                total = time.monotonic() - started
                rows.append((mode, outcome.aligned["shop.alliance.example"], args.rounds, outcome.seconds_per_round,
                             total, outcome.auc_alone, outcome.auc_vertical))
                console.print(f"{mode}: {outcome.seconds_per_round:.2f} s per round")
        finally:
            for node in nodes.values():
                node.dispose()
    table = Table(title=f"Vertical rounds on this machine ({datetime.now(UTC):%Y-%m-%d})")
    for col in ("mode", "aligned", "rounds", "s per round", "s in all (PSI, start-up)", "AUC alone", "AUC vertical"):
        table.add_column(col, justify="left" if col == "mode" else "right")
    for mode, aligned, rounds, per_round, total, alone, vertical in rows:
        table.add_row(mode, f"{aligned:,}", str(rounds), f"{per_round:.2f}", f"{total:.1f}", f"{alone:.3f}",
                      f"{vertical:.3f}")
    console.print(table)
    if args.write_docs:
        lines = [
            f"Measured {datetime.now(UTC):%Y-%m-%d} with `python benchmarks/vertical_deployment.py`: "
            f"{args.shared:,} shared members, {args.rounds} rounds, the partner's ClientApp on one SuperNode.",
            "",
            "| mode | aligned | rounds | s per round | s in all (PSI, start-up) |",
            "|---|---:|---:|---:|---:|",
            *(f"| {m} | {a:,} | {r} | {p:.2f} | {t:.1f} |" for m, a, r, p, t, _, _ in rows),
        ]
        replace_section(DOCS, MD_START, MD_END, "A vertical round on the Deployment Engine", "\n".join(lines))


if __name__ == "__main__":
    main()
