"""``alliance-node exchange``, ``settle``, ``settlement``, ``liability``, ``purchases``: the money path's commands."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from node.cli.common import HERE, DataDir, err, fail, friendly, open_node, out

exchange_app = typer.Typer(no_args_is_help=True, help="Points exchange: recovery and log reconciliation with peers.")
settlement_app = typer.Typer(no_args_is_help=True, help="Settlement between brands: statements and net positions.")
purchases_app = typer.Typer(no_args_is_help=True, help="Purchases that earn points, posted in bulk as tills do.")


def _when(value: str) -> datetime:
    """An ISO date or date-time, UTC unless it says otherwise."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an ISO date or date-time (e.g. 2026-11-01 or 2026-11-01T00:00)") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@exchange_app.command("recover")
@friendly
def exchange_recover(data_dir: DataDir = HERE) -> None:
    """Resume unfinished exchanges and log committed ones now (``serve`` also does this on its own)."""
    node = open_node(data_dir)
    report = node.exchange_recovery.recover()
    out.print(f"resumed {report.resumed} exchange(s), logged {report.logged}, still pending {report.still_pending}")
    if report.still_pending:
        raise typer.Exit(1)


@exchange_app.command("reconcile")
@friendly
def exchange_reconcile(
    peer: Annotated[str, typer.Argument(help="The other brand's node id.")],
    proofs: Annotated[
        bool,
        typer.Option("--proofs", help="Fetch and check every record's inclusion proof even when the digests agree."),
    ] = False,
    data_dir: DataDir = HERE,
) -> None:
    """Compare this node's exchange log with a peer's, checked through the peer's signed checkpoint.

    The two nodes first compare one signed Merkle root of their exchanges with each other; only if
    the roots differ (or with --proofs) does the peer send every record with its inclusion proof.
    Exits 1 and lists the exchanges if either log lacks one, or if their entries differ.
    """
    from node.settlement.statements import SettlementError

    node = open_node(data_dir)
    try:
        result = node.settlement.reconcile_with(peer, proofs=proofs)
    except SettlementError as exc:
        fail(str(exc))
        return
    if result.agreed:
        out.print(f"{peer}: {result.common} exchange(s), both logs agree")
        return
    table = Table("mismatch", "exchange id", title=f"exchange logs of {node.settings.node_id} and {peer}")
    for label, ids in (("only here", result.only_mine), ("only there", result.only_theirs), ("differ", result.differs)):
        for exchange_id in ids:
            table.add_row(label, exchange_id)
    out.print(table)
    raise typer.Exit(1)


@friendly
def settle(
    start: Annotated[str, typer.Option(help="Window start (ISO date or date-time, UTC by default).")],
    end: Annotated[str, typer.Option(help="Window end, exclusive.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Where to write one signed file per pair.")] = Path(
        "settlement"
    ),
    data_dir: DataDir = HERE,
) -> None:
    """Swap signed settlement statements with every other brand for a window and write them.

    Each file holds both brands' signed statements and whether they agree; ``settlement report``
    nets the agreed ones. Exits 1 if any pair disputes or cannot be reached.
    """
    from contracts.client import ChainRefused
    from node.chain.settlement import ChainSettlement
    from node.settlement.statements import SettlementError, Window

    node = open_node(data_dir)
    window = Window(_when(start), _when(end))
    out_dir.mkdir(parents=True, exist_ok=True)
    me = node.settings.node_id
    on_chain = ChainSettlement.from_settings(node.settings)
    table = Table("counterpart", "exchanges", "agreed", "file", title=f"settlement statements of {me}")
    if on_chain is not None:
        table.add_column("on chain")
    failed = False
    for brand in node.registry.brands:
        if brand.node_id == me:
            continue
        try:
            pair = node.settlement.swap_statements(brand.node_id, window)
        except SettlementError as exc:
            table.add_row(brand.node_id, "-", "[red]unreachable[/red]", str(exc)[:60])
            failed = True
            continue
        a, b = sorted((me, brand.node_id))
        path = out_dir / f"{window.start:%Y%m%dT%H%M}_{a}__{b}.json"
        path.write_text(json.dumps(pair.to_json(), indent=2, sort_keys=True) + "\n")
        agreed = pair.reconciliation.agreed
        failed |= not agreed
        cells = [brand.node_id, str(len(pair.mine.lines)), "yes" if agreed else "[red]DISPUTE[/red]", str(path)]
        if on_chain is not None:
            try:
                cells.append(on_chain.post(pair))  # our statement's hash; "confirmed" once both sides posted
            except (ChainRefused, LookupError) as exc:
                cells.append(f"[red]refused: {exc}[/red]")
                failed = True
        table.add_row(*cells)
    out.print(table)
    led = [r.to_json() for r in node.vertical.runs(window.start, window.end) if r.role == "label_holder"]
    if led:  # what each partner's features were worth to this brand's cross-brand models (no money moves)
        from node.settlement.contributions import contributions_file

        path = out_dir / f"{window.start:%Y%m%dT%H%M}_{me}__contributions.json"
        path.write_text(json.dumps(contributions_file(me, window, led, node.signer), indent=2, sort_keys=True) + "\n")
        out.print(f"cross-brand model contributions of {len(led)} run(s): {path}", highlight=False)
    if failed:
        raise typer.Exit(1)


@settlement_app.command("report")
@friendly
def settlement_report(
    files: Annotated[list[Path], typer.Argument(help="Pair files written by `settle` (any brand's).")],
    registry_file: Annotated[Path, typer.Option("--registry", help="The alliance registry.")] = Path("registry.toml"),
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    carry_from: Annotated[
        Path | None,
        typer.Option("--carry-from", help="The previous window's JSON report: its fractions of a fen carry on."),
    ] = None,
) -> None:
    """Check every statement's signature against the registry, net the agreed pairs, print the payments.

    Positions sum to zero; the payments are the fewest that settle them. Each pair pays whole fen;
    the fraction is carried into the next window, whose report takes it with ``--carry-from``
    (keep the ``--format json`` report of every window). Disputed pairs are left out and listed;
    the command then exits 1.
    """
    from node.peers.registry import load_registry
    from node.settlement.report import net_from_files, split_contributions
    from node.settlement.statements import SettlementError, settlement_csv, settlement_json

    if fmt not in ("table", "csv", "json"):
        raise ValueError("--format is table, csv or json")
    try:
        registry = load_registry(registry_file)
        previous = carry_from.read_text() if carry_from is not None else None
        pairs, contributions = split_contributions(files, registry)
        result, disputes = net_from_files(pairs, registry, previous)
    except OSError as exc:
        fail(f"cannot read {exc.filename}: {exc.strerror}")
        return
    except SettlementError as exc:
        fail(str(exc))
        return
    if fmt == "csv":
        typer.echo(settlement_csv(result), nl=False)
    elif fmt == "json":
        data = json.loads(settlement_json(result))
        if contributions:
            data["model_contributions"] = [c.__dict__ | {"at": c.at.isoformat()} for c in contributions]
        typer.echo(json.dumps(data, indent=2, sort_keys=True) + "\n", nl=False)
    else:
        print_settlement(result)
        if contributions:
            table = Table(
                "label holder",
                "run",
                "partner",
                "AUC gain",
                "used",
                "members",
                title="cross-brand model contributions (no money moves)",
            )
            for c in contributions:
                gain = "n/a" if c.auc_gain is None else f"{c.auc_gain:+.3f}"
                table.add_row(c.label_holder, c.run, c.partner, gain, "yes" if c.used else "no", f"{c.members:,}")
            out.print(table)
    for d in disputes:
        err.print(f"[red]dispute:[/red] {d} (left out of the netting)")
    if disputes:
        raise typer.Exit(1)


def print_settlement(result: object) -> None:
    """The net positions and payments as tables."""
    from node.settlement.statements import Settlement

    assert isinstance(result, Settlement)
    positions = Table("brand", "net position (fen)", title="net positions (receivable +, payable -)")
    for brand, fen in sorted(result.positions.items()):
        positions.add_row(brand, f"{fen:,}")
    out.print(positions)
    payments = Table("payer", "payee", "amount (fen)", title="payments that settle the window")
    for p in result.payments:
        payments.add_row(p.payer, p.payee, f"{p.amount:,}")
    out.print(payments)


@friendly
def liability_command(
    data_dir: DataDir = HERE,
    on: Annotated[str | None, typer.Option("--on", help="The day to value (default: today).")] = None,
) -> None:
    """The brand's outstanding points and their value, and breakage (points that expired unused)."""
    node = open_node(data_dir)
    day = date.fromisoformat(on) if on else datetime.now(UTC).date()
    print_liability([node.settlement.liability(day)])


def print_liability(rows: list[object]) -> None:
    """Each brand's liability as a table."""
    table = Table("brand", "outstanding points", "liability (CNY)", "expired points", "breakage (CNY)")
    for r in rows:
        table.add_row(
            r.brand,  # type: ignore[attr-defined]
            f"{r.outstanding_points:,}",  # type: ignore[attr-defined]
            f"{r.liability_fen / Decimal(100):,.2f}",  # type: ignore[attr-defined]
            f"{r.expired_points:,}",  # type: ignore[attr-defined]
            f"{r.breakage_fen / Decimal(100):,.2f}",  # type: ignore[attr-defined]
        )
    out.print(table)


CSV_COLUMNS = ("member_ref", "purchase_id", "amount_fen")  # and "day" (YYYY-MM-DD), optional


def read_purchases(path: Path) -> list[dict[str, object]]:
    """The purchases of a CSV with a header row (``member_ref,purchase_id,amount_fen[,day]``), checked
    line by line so that a bad line is named before anything is sent."""
    import csv

    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(
                f"{path}: the header row lacks {', '.join(missing)} (columns: {', '.join(CSV_COLUMNS)}, day)"
            )
        rows: list[dict[str, object]] = []
        for line, row in enumerate(reader, start=2):
            amount = (row.get("amount_fen") or "").strip()
            if not amount.isdigit():
                raise ValueError(f"{path}, line {line}: amount_fen must be a whole number of fen, not {amount!r}")
            item: dict[str, object] = {
                "member_ref": (row.get("member_ref") or "").strip(),
                "purchase_id": (row.get("purchase_id") or "").strip(),
                "amount_fen": int(amount),
            }
            if day := (row.get("day") or "").strip():
                try:
                    item["day"] = date.fromisoformat(day).isoformat()
                except ValueError as exc:
                    raise ValueError(f"{path}, line {line}: day must be YYYY-MM-DD, not {day!r}") from exc
            rows.append(item)
    return rows


@purchases_app.command("import")
@friendly
def purchases_import(
    file: Annotated[Path, typer.Argument(help="CSV with a header: member_ref,purchase_id,amount_fen[,day].")],
    url: Annotated[str, typer.Option(help="The node's API, e.g. http://127.0.0.1:8470.")],
    key: Annotated[str, typer.Option(envvar="ALLIANCE_API_KEY", help="An operator's API key (or ALLIANCE_API_KEY).")],
    batch: Annotated[int, typer.Option(min=1, max=1000, help="Purchases per call (at most 1,000).")] = 1000,
    rejects: Annotated[Path | None, typer.Option(help="Write the refused purchases and why to this CSV.")] = None,
) -> None:
    """Post a CSV of purchases through ``POST /v1/purchases:batch``: each earns its points once (a
    re-run of the same file credits nothing twice), with a result per purchase."""
    import csv

    import httpx

    from node.core.progress import progress_bar

    rows = read_purchases(file)
    earned, refused = 0, []
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, timeout=60.0, headers=auth) as client, progress_bar(err, remaining=True) as bar:
        task = bar.add_task(f"posting {len(rows):,} purchases", total=len(rows))
        for i in range(0, len(rows), batch):
            chunk = rows[i : i + batch]
            try:
                r = client.post("/v1/purchases:batch", json={"purchases": chunk})
            except httpx.TransportError as exc:
                fail(f"the node at {url} did not answer: {exc}")
                return
            if r.status_code != 200:
                detail = r.json().get("detail", r.text) if "json" in r.headers.get("content-type", "") else r.text
                fail(f"the node refused the batch from line {i + 2} ({r.status_code}): {detail}")
                return
            answer = r.json()
            earned += answer["earned"]
            refused += [res for res in answer["results"] if res["status"] == "refused"]
            bar.advance(task, len(chunk))
    out.print(f"{earned:,} purchases recorded (points earned now or by an earlier run), {len(refused):,} refused")
    if refused and rejects is not None:
        with open(rejects, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["purchase_id", "reason_code", "detail"])
            writer.writerows([res["purchase_id"], res["reason_code"], res["detail"]] for res in refused)
        out.print(f"the refused ones, with why, are in {rejects}")
    if refused:
        for res in refused[:5]:
            err.print(f"  {res['purchase_id']}: {res['reason_code']} ({res['detail']})", highlight=False)
        raise typer.Exit(1)
