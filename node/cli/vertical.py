"""``alliance-node federate vertical`` (a cross-brand run over local nodes) and ``federate simulate --vertical``
(shared customers' exports, aligned by PSI, trained vertically)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table as RichTable

from federation.psi import DEFAULT_MINIMUM
from node.cli.common import (
    CutoffOpt,
    HorizonOpt,
    JsonOpt,
    NodesOpt,
    RunOpt,
    err,
    fail,
    friendly,
    open_node,
    out,
    window_option,
)
from node.core.progress import progress_bar


def simulate_vertical_cmd(
    csv: list[Path],
    id_column: str | None,
    label: str,
    names: list[str],
    ignore: list[str],
    epsilon: float,
    rounds: int,
    seed: int,
    minimum: int,
    as_json: bool,
) -> None:
    """Read the files, align them by PSI, run vertical with and without DP, print the comparison."""
    from federation.simulate_vertical import VerticalBrand, simulate_vertical
    from federation.tabular import Table, TableError, encode_features, infer_features, parse_label
    from federation.vertical_server import VerticalSettings

    if not id_column:
        fail("--vertical needs --id COLUMN: the identifier every brand shares (a normalised phone number)", 2)
        return
    if rounds < 1 or epsilon <= 0 or minimum < 1:
        fail("--rounds and --min-intersection are at least 1 and --epsilon is positive", 2)
    try:
        tables = [Table.read(p, names[i] if names else None) for i, p in enumerate(csv)]
        if len({t.name for t in tables}) != len(tables):
            fail("two brands have the same name: pass --name for each --csv", 2)
        holders = [t.name for t in tables if label in t.columns]
        if len(holders) != 1:
            found = ", ".join(holders) or "none"
            fail(f"the label column {label!r} must be in exactly one file (the label holder's); found in: {found}", 2)
        brands = []
        for t in tables:
            if id_column not in t.columns:
                fail(f"{t.name}: no id column {id_column!r} (columns: {', '.join(t.columns)})", 2)
            schema = infer_features(t, [id_column, label, *ignore])
            ids = t.column(id_column)
            y = None
            if label in t.columns:
                y = [parse_label(v, t.name, line) for line, v in enumerate(t.column(label), start=2)]
            brands.append(VerticalBrand(t.name, ids, encode_features(t, schema), y))
    except (TableError, ValueError) as exc:
        fail(str(exc), 2)
        return
    settings = VerticalSettings(run="simulate", rounds=rounds, epsilon=epsilon, seed=seed)
    try:
        with progress_bar(err, transient=True) as bar:
            task = bar.add_task("aligning", total=len(brands) + 2)

            def step(message: str) -> None:
                bar.update(task, description=message, advance=1)

            result = simulate_vertical(brands, settings, minimum, step)
    except ValueError as exc:
        fail(str(exc), 1)
        return
    data = result.to_json()
    if as_json:
        out.print_json(json.dumps(data))
        return
    table = RichTable(title=f"Vertical, {data['intersection']:,} shared customers: held-out AUC (epsilon {epsilon:g})")
    for col in ("model", "AUC"):
        table.add_column(col, justify="left" if col == "model" else "right")
    table.add_row("label holder alone", f"{data['auc_alone']:.3f}")
    table.add_row(f"vertical, epsilon {epsilon:g}", f"{data['auc_vertical']:.3f}")
    table.add_row("vertical, no DP", f"{data['auc_vertical_nodp']:.3f}")
    table.add_row("every column pooled, no DP", f"{data['auc_centralized']:.3f}")
    out.print(table)
    for b in data["brands"]:  # type: ignore[attr-defined]
        role = "label holder" if b["label_holder"] else "partner"
        eps = "-" if b["epsilon"] is None else f"{b['epsilon']:.2f}"
        contribution = data["contributions"].get(b["name"])  # type: ignore[attr-defined]
        extra = "" if contribution is None else f", contribution {contribution:+.4f}"
        out.print(f"{b['name']} ({role}, {b['rows']:,} rows): epsilon spent {eps}{extra}", highlight=False)


@friendly
def vertical_cmd(
    node: NodesOpt,
    label_holder: Annotated[
        str, typer.Option("--label-holder", help="The brand (node id) whose churn labels the model learns.")
    ],
    run: RunOpt,
    epsilon: Annotated[
        float,
        typer.Option(
            "--epsilon",
            help="The label holder's epsilon for the run (within its joint_modeling budget); each partner "
            "spends at most its own cross_brand_epsilon setting.",
        ),
    ] = 3.0,
    rounds: Annotated[int, typer.Option("--rounds", help="Rounds of partner training (each costs epsilon).")] = 1,
    minimum: Annotated[
        int, typer.Option("--min-intersection", help="Refuse a run with fewer shared members than this.")
    ] = DEFAULT_MINIMUM,
    cutoff: CutoffOpt = None,
    horizon_end: HorizonOpt = None,
    deployment: Annotated[
        Path | None,
        typer.Option(
            "--deployment",
            help="Train on Flower's Deployment Engine (a SuperLink, a SuperNode per partner, TLS and SuperNode "
            "auth), its files under this directory; default: in this process.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Train a cross-brand churn model for the label holder with partners' features of shared members.

    Opens every node in this process. For each partner, private set intersection on the phone numbers
    of members who gave joint_modeling and joint_modeling:<the other brand> consent (signed peer calls
    through each node's egress check); then vertical training with DP at every brand, each charged to
    its own budget. Prints the shared members, the label holder's held-out AUC alone and with the
    partners, each partner's contribution and each brand's epsilon; every node records the run.
    """
    from federation.vertical_server import VerticalSettings
    from node.api.app import create_app
    from node.demo.vertical import connect
    from node.learning.vertical_run import print_vertical, vertical_nodes

    if len(node) < 2:
        fail("give --node at least twice: the label holder's and a partner's", 2)
    if rounds < 1 or epsilon <= 0 or minimum < 1:
        fail("--rounds and --min-intersection are at least 1 and --epsilon is positive", 2)
    window = window_option(cutoff, horizon_end)
    nodes = [open_node(d) for d in node]
    try:
        by_id = {n.settings.node_id: n for n in nodes}
        if label_holder not in by_id:
            fail(f"--label-holder {label_holder!r} is none of the nodes given: {', '.join(sorted(by_id))}", 2)
        apps = {n.settings.node_id: create_app(n) for n in nodes}
        for n in nodes:  # each node's peer calls reach the others' apps at the URLs it knows them by
            connect(n, apps)
        holder = by_id[label_holder]
        partners = [n for n in nodes if n is not holder]
        with progress_bar(err, transient=True) as bar:
            task = bar.add_task("aligning", total=len(partners) + 1)
            outcome = vertical_nodes(
                holder,
                partners,
                run,
                window,
                VerticalSettings(run=run, rounds=rounds, epsilon=epsilon),
                minimum,
                lambda message: bar.update(task, description=message, advance=1),
                deployment,
            )
    finally:
        for n in nodes:
            n.dispose()
    data = outcome.to_json()
    if as_json:
        out.print_json(json.dumps(data))
        return
    print_vertical(data, out)
