"""``alliance-node federate``: federated learning commands (torch and Flower load only here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table as RichTable

from node.cli import _fail, err, friendly, out
from node.progress import progress_bar

federate_app = typer.Typer(no_args_is_help=True, help="Federated learning: the joint churn model.")


@federate_app.command("simulate")
@friendly
def simulate_cmd(
    csv: Annotated[
        list[Path], typer.Option("--csv", help="One brand's CSV export (header row); give it once per brand.")
    ],
    label: Annotated[str, typer.Option("--label", help="The 0/1 column to predict (true/false, yes/no also read).")],
    epsilon: Annotated[float, typer.Option("--epsilon", help="Each brand's DP budget for the run.")] = 3.0,
    rounds: Annotated[int, typer.Option("--rounds", help="Federated rounds.")] = 5,
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
    batch_size: Annotated[int, typer.Option("--batch-size", help="Expected DP-SGD batch (Poisson sampling).")] = 64,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate.")] = 0.1,
    test_fraction: Annotated[
        float, typer.Option("--test-fraction", help="Held-out share of each brand's rows.")
    ] = 0.25,
    seed: Annotated[int, typer.Option("--seed", help="Seed for splits, initial weights and sampling.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Federate a model over brands' CSV exports and compare it with each brand alone and with pooling.

    Every brand's held-out rows judge four models: the brand alone (no DP), federated with Opacus
    DP-SGD at --epsilon, federated without DP, and all rows pooled without DP (the upper bound).
    Without --schema, columns and categories come from the union of the files: a simulation
    shortcut, since a real alliance agrees on a schema without pooling anything.
    """
    from federation.simulate import Brand, SimulationSettings, simulate
    from federation.tabular import Schema, Table, TableError, encode, infer_schema

    if len(csv) < 2:
        _fail("give --csv at least twice: federation needs two brands", 2)
    names = list(name or [])
    if names and len(names) != len(csv):
        _fail(f"{len(names)} --name for {len(csv)} --csv: give one name per file, or none", 2)
    if epsilon <= 0 or rounds < 1 or epochs < 1 or batch_size < 1 or lr <= 0:
        _fail("--epsilon and --lr are positive; --rounds, --epochs and --batch-size at least 1", 2)
    try:
        tables = [Table.read(p, names[i] if names else None) for i, p in enumerate(csv)]
        if len({t.name for t in tables}) != len(tables):
            _fail("two brands have the same name: pass --name for each --csv", 2)
        agreed = Schema.read(schema) if schema else infer_schema(tables, label, ignore or ())
        if agreed.label != label:
            _fail(f"the schema's label is {agreed.label!r}, not {label!r}", 2)
        brands = [Brand(t.name, *encode(t, agreed)) for t in tables]
    except TableError as exc:
        _fail(str(exc), 2)
        return
    settings = SimulationSettings(
        epsilon=epsilon,
        rounds=rounds,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        test_fraction=test_fraction,
        seed=seed,
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
    for col in ("brand", "rows", "alone", "federated (DP)", "federated (no DP)", "pooled", "epsilon", "contribution"):
        table.add_column(col, justify="left" if col == "brand" else "right")
    for b in data["brands"]:  # type: ignore[attr-defined]
        table.add_row(
            b["name"],
            f"{b['rows']:,}",
            _f(b["auc_local"]),
            _f(b["auc_federated"]),
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
        _f(data["auc_federated_nodp_mean"]),
        _f(data["auc_centralized"]),
        "",
        "",
        style="bold",
    )
    out.print(table)


def _f(v: object, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"
