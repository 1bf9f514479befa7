"""``alliance-node``: the command line of a brand's node. The root app, ``init``, ``serve`` and ``demo``;
every group of commands lives in its own module and is added here."""

from __future__ import annotations

import shlex
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from node.cli import audit, chain, compliance, deployment, exchange, learning, ledger, peers, rights, vertical
from node.cli.common import HERE, DataDir, err, fail, friendly, open_node, out

app = typer.Typer(
    no_args_is_help=True,
    help="A loyalty alliance node: ledger, witnessing, API and demo.",
    pretty_exceptions_enable=False,
)


def _warn_loose_permissions(data_dir: Path, key_file: str) -> None:
    """One line on stderr if the data directory or a secret file in it is open to other users, with the fix."""
    from node.core.datadir import loose_permissions

    found = loose_permissions(data_dir, key_file)
    if not found:
        return
    listed = ", ".join(f"{p.path} {p.mode:04o}" for p in found)
    fixes = [f"chmod 700 {shlex.quote(str(p.path))}" for p in found if p.path.is_dir()]
    files = [shlex.quote(str(p.path)) for p in found if not p.path.is_dir()]
    if files:
        fixes.append(f"chmod 600 {' '.join(files)}")
    # a warning, not a refusal: the operator may have reasons (a shared backup user), but should know
    err.print(
        f"[yellow]warning:[/yellow] other users may read this node's secrets ({escape(listed)}): "
        f"run {escape('; '.join(fixes))}",
        highlight=False,
        soft_wrap=True,
    )


@app.command()
@friendly
def init(
    node_id: Annotated[str, typer.Option(help="The node's name, e.g. airline.alliance.example; names its key.")],
    data_dir: DataDir = HERE,
    display_name: Annotated[str, typer.Option(help="The brand's name for people.")] = "",
    region: Annotated[str, typer.Option(help="Where the node and its data are hosted (ISO 3166).")] = "CN",
    host: Annotated[str, typer.Option(help="Address `serve` listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port `serve` listens on.")] = 8470,
    database_url: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL; default: SQLite file in the data dir.")
    ] = None,
) -> None:
    """Create a node: its Ed25519 key, node.vkey, witness.vkey, node.toml and database."""
    from compliance.egress import hosting_problem
    from node.core.datadir import init_node
    from node.core.settings import VKEY_FILE

    if problem := hosting_problem(region):
        fail(problem)
    settings = init_node(
        data_dir, node_id, display_name=display_name, region=region, host=host, port=port, database_url=database_url
    )
    out.print(f"initialised {settings.node_id} in {data_dir.resolve()}")
    out.print(f"verifier key: {(data_dir / VKEY_FILE).read_text().strip()}")
    _warn_loose_permissions(data_dir, settings.key_file)  # a directory that existed keeps its mode


@app.command()
@friendly
def serve(
    data_dir: DataDir = HERE,
    host: Annotated[str | None, typer.Option(help="Override the configured listen address.")] = None,
    port: Annotated[int | None, typer.Option(help="Override the configured port.")] = None,
) -> None:
    """Serve the node with uvicorn: the API (docs at /docs), the privacy centre (/privacy), the console
    and dashboard (/console)."""
    import uvicorn

    from compliance.egress import hosting_problem
    from node.web.site import create_site, redact_access_log

    node = open_node(data_dir, recover=True)
    _warn_loose_permissions(data_dir, node.settings.key_file)
    if problem := hosting_problem(node.settings.region):  # the deploy check: refuse to serve from abroad
        fail(problem)
    node.signer  # noqa: B018  fail now, not at the first request, if the key is unreadable
    app = create_site(node, recovery=True)  # resumes unfinished exchanges at start and then periodically
    config = uvicorn.Config(app, host=host or node.settings.host, port=port or node.settings.port, log_level="info")
    redact_access_log()  # after uvicorn.Config set its loggers up: privacy links carry a token in their query
    uvicorn.Server(config).run()


@app.command()
@friendly
def demo(
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Where the three nodes live (default: a new temporary directory).")
    ] = None,
    exchanges: Annotated[
        int, typer.Option(min=0, max=100_000, help="Exchanges between the brands' servers (0: skip the money path).")
    ] = 3000,
    federation: Annotated[
        bool, typer.Option("--federation/--no-federation", help="Train the joint churn model across the nodes.")
    ] = True,
    deployment: Annotated[
        bool, typer.Option("--deployment", help="Run the federated rounds on Flower's Deployment Engine (slower).")
    ] = False,
    chain: Annotated[
        bool, typer.Option("--chain", help="Anchor the logs and settle the window on an embedded EVM chain.")
    ] = False,
    serve: Annotated[
        bool,
        typer.Option("--serve", help="Leave the nodes running after the demo, with console and privacy-centre links."),
    ] = False,
) -> None:
    """Run the alliance demo: three brands as server processes, CDNOW purchases earning points, consent,
    linked accounts, exchanges, a settlement window, liability, witnessed checkpoints, verified exports,
    and a federated churn model trained with differential privacy across the three nodes."""
    from node.demo.main import DemoError, run_demo

    base = data_dir or Path(tempfile.mkdtemp(prefix="alliance-demo-"))
    try:
        result = run_demo(base, out, exchanges=exchanges, federation=federation, deployment=deployment, chain=chain)
    except DemoError as exc:
        fail(str(exc))
        return
    out.print(f"nodes and exports kept in {base}")
    if not result.ok:
        raise typer.Exit(1)
    if serve:
        from node.demo.main import BRANDS
        from node.demo.serving import serve_until_interrupted

        serve_until_interrupted(base, [brand for brand, _ in BRANDS], out)


app.command("settle")(exchange.settle)
app.command("liability")(exchange.liability_command)
for group, name in (
    (ledger.ledger_app, "ledger"),
    (peers.peers_app, "peers"),
    (ledger.witness_app, "witness"),
    (peers.staff_app, "staff"),
    (audit.audit_app, "audit"),
    (compliance.pia_app, "pia"),
    (compliance.feature_app, "feature"),
    (compliance.xborder_app, "xborder"),
    (rights.rights_app, "rights"),
    (rights.retention_app, "retention"),
    (rights.incident_app, "incident"),
    (exchange.exchange_app, "exchange"),
    (exchange.settlement_app, "settlement"),
    (exchange.purchases_app, "purchases"),
    (learning.federate_app, "federate"),
    (deployment.federation_app, "federation"),
    (chain.chain_app, "chain"),
):
    app.add_typer(group, name=name)
learning.federate_app.command("vertical")(vertical.vertical_cmd)  # its own module: learning.py is full


def main() -> None:
    """Console-script entry point."""
    app()
