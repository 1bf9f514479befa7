"""``alliance-node federate simulate --vertical``: shared customers' exports, aligned by PSI, trained vertically."""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table as RichTable

from node.cli.common import err, fail, out
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
