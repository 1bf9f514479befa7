"""``alliance-node federate``: federated learning commands (torch and Flower load only here)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table as RichTable

from node.cli.common import (
    CutoffOpt,
    DataDir,
    EpsilonOpt,
    FormatOption,
    HorizonOpt,
    JsonOpt,
    NodesOpt,
    OutputFormat,
    RoundsOpt,
    RunOpt,
    err,
    fail,
    friendly,
    open_node,
    out,
    print_json,
    window_option,
)
from node.core.progress import progress_bar

federate_app = typer.Typer(
    no_args_is_help=True,
    help="Federated learning in one process: simulate over CSV exports, run over local nodes, and each node's "
    "privacy budget and rounds (`federation` runs the same apps on Flower's Deployment Engine).",
)


@federate_app.command("simulate")
@friendly
def simulate_cmd(
    csv: Annotated[
        list[Path], typer.Option("--csv", help="One brand's CSV export (header row); give it once per brand.")
    ],
    label: Annotated[str, typer.Option("--label", help="The 0/1 column to predict (true/false, yes/no also read).")],
    epsilon: Annotated[float, typer.Option("--epsilon", help="Each brand's DP budget for the run.")] = 3.0,
    rounds: Annotated[
        int | None,
        typer.Option(
            "--rounds", help="Most rounds (and epochs alone or pooled); DP runs all of them. Default 30; vertical 1."
        ),
    ] = None,
    vertical: Annotated[
        bool,
        typer.Option(
            "--vertical",
            help="The files hold different columns of shared customers (keyed by --id); the label is in one of them.",
        ),
    ] = False,
    id_column: Annotated[
        str | None, typer.Option("--id", help="With --vertical: the identifier column every file shares.")
    ] = None,
    min_intersection: Annotated[
        int, typer.Option("--min-intersection", help="With --vertical: refuse fewer shared customers than this.")
    ] = 100,
    name: Annotated[
        list[str] | None, typer.Option("--name", help="Brand names, in --csv order (default: file names).")
    ] = None,
    schema: Annotated[
        Path | None, typer.Option("--schema", help="Shared schema JSON; default: inferred from the union of the files.")
    ] = None,
    ignore: Annotated[
        list[str] | None, typer.Option("--ignore", help="A column not to learn from (ids); repeatable.")
    ] = None,
    epochs: Annotated[int, typer.Option("--epochs", help="Local epochs per round.")] = 1,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Expected DP-SGD batch (Poisson sampling).")] = 256,
    lr: Annotated[float, typer.Option("--lr", help="Local learning rate.")] = 0.5,
    model: Annotated[str, typer.Option("--model", help="logistic (default) or mlp (16 hidden units).")] = "logistic",
    clip: Annotated[float, typer.Option("--clip", help="DP-SGD's per-example gradient norm bound.")] = 4.5,
    server_optimizer: Annotated[
        str, typer.Option("--server-optimizer", help="fedavg (default), fedavgm, fedadam or fedyogi.")
    ] = "fedavg",
    server_lr: Annotated[
        float, typer.Option("--server-lr", help="The server optimiser's step; 0 keeps its default.")
    ] = 0.0,
    patience: Annotated[
        int, typer.Option("--patience", help="Stop a model after this many checks without a better validation loss.")
    ] = 3,
    test_fraction: Annotated[
        float, typer.Option("--test-fraction", help="Held-out share of each brand's rows.")
    ] = 0.25,
    seed: Annotated[int, typer.Option("--seed", help="Seed for splits, initial weights and sampling.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Federate a model over brands' CSV exports and compare it with each brand alone and with pooling.

    Every brand's held-out rows judge four models: the brand alone (no DP), federated with Opacus
    DP-SGD at --epsilon, federated without DP, and all rows pooled without DP (the upper bound).
    Every model trains on the same rows to one stopping rule: a fifth of each brand's training rows
    is set aside, and a model stops once its loss there has not improved for --patience epochs
    (rounds, federated), at most --rounds; DP models run every round, their noise being set for
    them. --json says how many optimiser steps each model made.
    Without --schema, columns and categories come from the union of the files: a simulation
    shortcut, since a real alliance agrees on a schema without pooling anything.

    With --vertical the files are different brands' columns of shared customers: they are aligned
    on --id by private set intersection, and the label holder (the file with --label) is judged
    alone, vertical at --epsilon, vertical without DP and with every column pooled, on the same
    held-out shared customers (docs/federation.md).
    """
    if vertical:
        from node.cli.vertical import simulate_vertical_cmd

        if len(csv) < 2:
            fail("give --csv at least twice: the label holder's file and a partner's", 2)
        simulate_vertical_cmd(
            csv,
            id_column,
            label,
            list(name or []),
            list(ignore or []),
            epsilon,
            rounds or 1,
            seed,
            min_intersection,
            as_json,
        )
        return
    rounds = 30 if rounds is None else rounds
    from federation.server_app import SERVER_OPTIMISERS
    from federation.simulate import Brand, SimulationSettings, simulate
    from federation.tabular import Schema, Table, TableError, encode, infer_schema
    from federation.training import MODELS

    if len(csv) < 2:
        fail("give --csv at least twice: federation needs two brands", 2)
    names = list(name or [])
    if names and len(names) != len(csv):
        fail(f"{len(names)} --name for {len(csv)} --csv: give one name per file, or none", 2)
    if epsilon <= 0 or rounds < 1 or epochs < 1 or batch_size < 1 or lr <= 0 or clip <= 0:
        fail("--epsilon, --lr and --clip are positive; --rounds, --epochs and --batch-size at least 1", 2)
    if patience < 1 or server_lr < 0:
        fail("--patience is at least 1 and --server-lr is 0 (the default step) or more", 2)
    if model not in MODELS:
        fail(f"--model is one of {', '.join(MODELS)}, not {model!r}", 2)
    if server_optimizer not in SERVER_OPTIMISERS:
        fail(f"--server-optimizer is one of {', '.join(SERVER_OPTIMISERS)}, not {server_optimizer!r}", 2)
    try:
        tables = [Table.read(p, names[i] if names else None) for i, p in enumerate(csv)]
        if len({t.name for t in tables}) != len(tables):
            fail("two brands have the same name: pass --name for each --csv", 2)
        agreed = Schema.read(schema) if schema else infer_schema(tables, label, ignore or ())
        if agreed.label != label:
            fail(f"the schema's label is {agreed.label!r}, not {label!r}", 2)
        brands = [Brand(t.name, *encode(t, agreed)) for t in tables]
    except TableError as exc:
        fail(str(exc), 2)
        return
    settings = SimulationSettings(
        epsilon=epsilon,
        rounds=rounds,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        test_fraction=test_fraction,
        seed=seed,
        model=model,
        clip=clip,
        server=server_optimizer,
        server_lr=server_lr,
        patience=patience,
    )
    with progress_bar(err, transient=True) as bar:
        task = bar.add_task("training", total=len(brands) + 1 + 2 * rounds)

        def step(message: str) -> None:
            bar.update(task, description=message, advance=1)

        result = simulate(brands, settings, step)
    if as_json:
        out.print_json(json.dumps(result.to_json()))
        return
    _print_table(result.to_json())


def _print_table(data: dict[str, object]) -> None:
    table = RichTable(title=f"Held-out AUC per brand (epsilon {data['epsilon_target']}, {data['rounds']} rounds)")
    cols = ("brand", "rows", "alone", "federated (DP)", "served", "joint share", "federated (no DP)", "pooled")
    cols += ("epsilon", "contribution")
    for col in cols:
        table.add_column(col, justify="left" if col == "brand" else "right")
    for b in data["brands"]:  # type: ignore[attr-defined]
        table.add_row(
            b["name"],
            f"{b['rows']:,}",
            _f(b["auc_local"]),
            _f(b["auc_federated"]),
            _f(b["auc_served"]),
            _f(b["joint_share"], 1),
            _f(b["auc_federated_nodp"]),
            _f(b["auc_centralized"]),
            _f(b["epsilon"], 2),
            _f(b["contribution"], 4),
        )
    table.add_row(
        "mean",
        "",
        _f(data["auc_local_mean"]),
        _f(data["auc_federated_mean"]),
        _f(data["auc_served_mean"]),
        "",
        _f(data["auc_federated_nodp_mean"]),
        _f(data["auc_centralized"]),
        "",
        "",
        style="bold",
    )
    out.print(table)
    brands = data["brands"]  # type: ignore[index]
    alone = ", ".join(f"{b['name']} {b['steps_local']:,}" for b in brands)  # type: ignore[attr-defined]
    out.print(
        f"optimiser steps: alone {alone}; pooled {data['steps_centralized']:,}; federated with DP "
        f"{data['rounds_federated']} rounds, without DP {data['rounds_federated_nodp']} (stopping rule: "
        f"{data['stopping_rule']['patience']} checks without a better validation loss, DP runs every round)",  # type: ignore[index]
        highlight=False,
    )
    out.print(
        "served: the federated model blended with the brand's own (alone) model, the joint model's share "
        "chosen on the brand's validation rows: what its node scores members with",
        highlight=False,
    )


def _f(v: object, digits: int = 3, sign: bool = False) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    return f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"


def run_over_nodes(
    node: list[Path],
    run: str,
    epsilon: float,
    rounds: int,
    cutoff: str | None,
    horizon_end: str | None,
    as_json: bool,
    runner: object = None,
    label: str = "federated rounds",
    extra: dict[str, str] | None = None,
) -> None:
    """The body both `federate run` and `federation run` share: window, nodes, progress, report."""
    from federation.server_app import RunSettings
    from node.learning.run import federate_nodes, in_process, print_outcomes

    if len(node) < 2:
        fail("give --node at least twice: federation needs two brands", 2)
    window = window_option(cutoff, horizon_end)
    nodes = {str(i): open_node(d) for i, d in enumerate(node)}
    try:
        with progress_bar(err, transient=True) as bar:
            task = bar.add_task(label, total=rounds)
            result = federate_nodes(
                nodes,
                window,
                RunSettings(run=run, rounds=rounds, epsilon=epsilon),
                lambda r: bar.update(
                    task, advance=1, description=f"round {r.round}/{rounds}, mean AUC {r.auc_mean:.3f}"
                ),
                runner=runner or in_process,  # type: ignore[arg-type]
            )
    finally:
        for n in nodes.values():
            n.dispose()
    if as_json:
        data = {
            **(extra or {}),
            "report": result.report.to_json(),
            "brands": [asdict(b) | {"epsilon_remaining": b.epsilon_remaining} for b in result.brands],
        }
        out.print_json(json.dumps(data, default=str).replace("NaN", "null"))
        return
    print_outcomes(result, out)
    for key, value in (extra or {}).items():
        out.print(f"{key.replace('_', ' ')}: {value}", highlight=False)


@federate_app.command("run")
@friendly
def run_cmd(
    node: NodesOpt,
    run: RunOpt,
    epsilon: EpsilonOpt = 3.0,
    rounds: RoundsOpt = 5,
    cutoff: CutoffOpt = None,
    horizon_end: HorizonOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train the joint churn model across nodes on this machine, in one process (no Deployment Engine).

    Each node takes part through its consent-gated loader: only members with joint_modeling consent,
    adults, not erased. Each round's manifest and epsilon go to the node's audit log; a node whose
    budget the round would pass refuses it. The global model of every round is stored in each node.
    """
    run_over_nodes(node, run, epsilon, rounds, cutoff, horizon_end, as_json)


@federate_app.command("budget")
@friendly
def budget_cmd(
    data_dir: DataDir,
    epsilon: Annotated[
        float | None, typer.Option("--epsilon", help="Set the total joint_modeling budget (audited).")
    ] = None,
) -> None:
    """Show (or set) the brand's total privacy budget for joint_modeling, with what is spent of it."""
    from node.learning.store import NodePrivacyBook

    n = open_node(data_dir)
    try:
        book = NodePrivacyBook(n.store.engine)
        if epsilon is not None:
            before = book.budget()
            book.set_budget(epsilon)
            n.audit(
                "config.change",
                purpose_code="joint_modeling",
                details={"setting": "privacy_budget_epsilon", "old": before, "new": float(epsilon)},
            )
        spent = book.spent()
        out.print(
            f"joint_modeling budget: epsilon {book.budget():g}; spent {spent:.3f}; "
            f"remaining {max(0.0, book.budget() - spent):.3f}",
            highlight=False,
        )
    finally:
        n.dispose()


@federate_app.command("status")
@friendly
def status_cmd(data_dir: DataDir, fmt: FormatOption = OutputFormat.TEXT) -> None:
    """The node's federated rounds (epsilon, delta, manifest) and the global model versions it holds."""
    from node.learning.store import NodeModelShelf, NodePrivacyBook

    n = open_node(data_dir)
    try:
        book, shelf = NodePrivacyBook(n.store.engine), NodeModelShelf(n.store.engine)
        spent = book.spent()
        data = {
            "rounds": book.rounds(),
            "models": shelf.versions(),
            "served": shelf.served(),
            "budget": {"epsilon": book.budget(), "spent": spent, "remaining": max(0.0, book.budget() - spent)},
        }
    finally:
        n.dispose()
    if fmt is OutputFormat.JSON:
        print_json(data)
        return
    short = (lambda h: str(h)[:16] + "…") if out.is_terminal else str  # whole hashes for programs and files
    rounds = RichTable("run", "round", "epsilon (cumulative)", "delta", "members", "members sha256", "at")
    rounds.title = "Trained rounds (joint_modeling)"
    for r in data["rounds"]:
        cells = (f"{r['epsilon']:.3f}", f"{r['delta']:g}", f"{r['members']:,}", short(r["members_sha256"]))
        rounds.add_row(str(r["run"]), str(r["round"]), *cells, str(r["at"])[:19])
    models = RichTable("run", "round", "sha256", "at", title="Global models held")
    for v in data["models"]:
        models.add_row(str(v["run"]), str(v["round"]), short(v["sha256"]), str(v["at"])[:19])
    served = RichTable("run", "joint round", "joint share", "own rows", "sha256", "at")
    served.title = "Served models (the joint model blended with the brand's own)"
    for v in data["served"]:
        cells = (f"{v['joint_share']:.1f}", f"{v['own_rows']:,}", short(v["sha256"]))
        served.add_row(str(v["run"]), str(v["round"]), *cells, str(v["at"])[:19])
    for table in (rounds, models, served):
        out.print(table)
    b = data["budget"]
    out.print(f"budget {b['epsilon']:g}, spent {b['spent']:.3f}, remaining {b['remaining']:.3f}")
