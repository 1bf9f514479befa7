"""``alliance-node``: the command line of a brand's node. The root app, ``init``, ``serve`` and ``demo``;
every group of commands lives in its own module and is added here."""

from __future__ import annotations

import shlex
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from node import missing_extra, package_version
from node.cli import audit, chain, compliance, deployment, exchange, learning, ledger, peers, rights, vertical
from node.cli.common import HERE, DataDir, FormatOption, OutputFormat, err, fail, friendly, open_node, out, print_json

app = typer.Typer(
    no_args_is_help=True,
    help="A loyalty alliance node: ledger, witnessing, API and demo.",
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        out.print(f"alliance-node {package_version()}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """A loyalty alliance node: ledger, witnessing, API and demo.

    Log lines go to stderr: ALLIANCE_LOG_FORMAT=json for JSON lines, ALLIANCE_LOG_LEVEL to change the level.
    """
    from node.ops.logsetup import configure_logging, from_environment

    configure_logging(*from_environment())


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


def _port_taken(host: str, port: int) -> str | None:
    """Why ``serve`` cannot listen on ``host:port``, with what to do (None: it can)."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a closing socket is no obstacle
        try:
            s.bind((host, port))
        except OSError as exc:
            return (
                f"cannot listen on {host}:{port}: {exc.strerror}. Another process (another node?) holds the port:"
                f" stop it, or choose another with --port (or `port` in node.toml)"
            )
    return None


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
    """Create a node: its Ed25519 key, node.vkey, witness.vkey, node.toml and database.

    Where node.key exists but node.toml was lost, writes a fresh node.toml for that key (never a new key).
    """
    from compliance.egress import hosting_problem
    from node.core.datadir import init_node
    from node.core.settings import VKEY_FILE

    if problem := hosting_problem(region):
        fail(problem)
    from node.core.settings import CONFIG_FILE, KEY_FILE

    recovering = (data_dir / KEY_FILE).exists() and not (data_dir / CONFIG_FILE).exists()
    settings = init_node(
        data_dir, node_id, display_name=display_name, region=region, host=host, port=port, database_url=database_url
    )
    if recovering:
        out.print(f"wrote a fresh {CONFIG_FILE} for the existing key of {settings.node_id} (settings are defaults)")
    else:
        out.print(f"initialised {settings.node_id} in {data_dir.resolve()}")
    out.print(f"verifier key: {(data_dir / VKEY_FILE).read_text().strip()}")
    _warn_loose_permissions(data_dir, settings.key_file)  # a directory that existed keeps its mode


@app.command()
@friendly
def serve(
    data_dir: DataDir = HERE,
    host: Annotated[str | None, typer.Option(help="Override the configured listen address.")] = None,
    port: Annotated[int | None, typer.Option(help="Override the configured port.")] = None,
    no_jobs: Annotated[
        bool, typer.Option("--no-jobs", help="Do not run the daily duties ([jobs] in node.toml): cron runs them.")
    ] = False,
) -> None:
    """Serve the node with uvicorn: the API (docs at /docs), the privacy centre (/privacy), the console
    and dashboard (/console)."""
    import uvicorn

    from compliance.egress import hosting_problem
    from node.ops.logsetup import configure_logging
    from node.web.site import create_site

    node = open_node(data_dir, recover=True)
    _warn_loose_permissions(data_dir, node.settings.key_file)
    if problem := hosting_problem(node.settings.region):  # the deploy check: refuse to serve from abroad
        fail(problem)
    node.signer  # noqa: B018  fail now, not at the first request, if the key is unreadable
    app = create_site(
        node, recovery=True, jobs=not no_jobs
    )  # resumes unfinished exchanges at start and then periodically
    bind_host, bind_port = host or node.settings.host, port or node.settings.port
    if problem := _port_taken(bind_host, bind_port):
        fail(problem)
    configure_logging(node.settings.log_format, node.settings.log_level)
    # uvicorn's logging config and access log are off: ours name each request's route and id, never
    # its path or query (members' ids and privacy links' tokens are there)
    config = uvicorn.Config(app, host=bind_host, port=bind_port, log_config=None, access_log=False)
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
    try:
        from node.demo.main import DemoError, run_demo
    except ModuleNotFoundError as exc:
        if missing_extra(exc) is None:
            raise
        fail("the demo needs the [demo] extra (the CDNOW data, torch, Flower): pip install 'alliance-node[demo]'")

    import os

    from node.ops.logsetup import configure_logging, from_environment

    if "ALLIANCE_LOG_LEVEL" not in os.environ:  # the demo tells its own story; its nodes' INFO lines would interrupt it
        configure_logging(from_environment()[0], "WARNING")
    base = data_dir or Path(tempfile.mkdtemp(prefix="alliance-demo-"))
    shown = Console()  # the demo's rules and tables are laid out for a reader, in a terminal or a CI log
    try:
        result = run_demo(base, shown, exchanges=exchanges, federation=federation, deployment=deployment, chain=chain)
    except DemoError as exc:
        fail(str(exc))
        return
    out.print(f"nodes and exports kept in {base}")
    if not result.ok:
        raise typer.Exit(1)
    if serve:
        from node.demo.main import BRANDS
        from node.demo.serving import serve_until_interrupted

        serve_until_interrupted(base, [brand for brand, _ in BRANDS], shown)


jobs_app = typer.Typer(no_args_is_help=True, help="The daily duties serve runs ([jobs] in node.toml).")


@jobs_app.command("list")
@friendly
def jobs_list(
    fmt: FormatOption = OutputFormat.TEXT,
    data_dir: DataDir = HERE,
) -> None:
    """Each duty's schedule and its newest run (when, outcome, what it did)."""
    from rich.table import Table

    from node.core.periodic import JobRuns

    node = open_node(data_dir)
    runs = JobRuns(node.store.engine)
    rows = []
    for name, schedule in node.settings.jobs.schedules().items():
        newest = next(iter(runs.runs(name)), None)
        rows.append(
            {
                "job": name,
                "schedule": schedule,
                "last_started": newest.started_at.isoformat() if newest else None,
                "outcome": newest.outcome if newest else None,
                "detail": newest.detail if newest else None,
            }
        )
    if fmt is OutputFormat.JSON:
        print_json({"timezone": node.settings.jobs.timezone, "jobs": rows})
        return
    table = Table("job", "schedule", "last run", "outcome", "detail", title=f"duties ({node.settings.jobs.timezone})")
    for r in rows:
        table.add_row(r["job"], r["schedule"], r["last_started"] or "never", r["outcome"] or "-", r["detail"] or "")
    out.print(table)


@jobs_app.command("run")
@friendly
def jobs_run(
    name: Annotated[str, typer.Argument(help="points_expire, rights_escalate, retention_purge or witness_request.")],
    data_dir: DataDir = HERE,
) -> None:
    """Run one duty now, whatever its schedule (what cron calls with `serve --no-jobs`); exits 1 if it fails."""
    from node.ops.jobs import DUTIES, Scheduler

    if name not in DUTIES:
        raise ValueError(f"no duty named {name!r}: there are {', '.join(DUTIES)}")
    outcome = Scheduler(open_node(data_dir)).run_now(name)
    out.print(f"{name}: {outcome.detail}", highlight=False)
    if not outcome.ok:
        raise typer.Exit(1)


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
    (rights.decommission_app, "decommission"),
    (compliance.entrustment_app, "entrustment"),
    (exchange.exchange_app, "exchange"),
    (exchange.settlement_app, "settlement"),
    (exchange.purchases_app, "purchases"),
    (learning.federate_app, "federate"),
    (deployment.federation_app, "federation"),
    (chain.chain_app, "chain"),
    (jobs_app, "jobs"),
    (audit.provisions_app, "provisions"),
):
    app.add_typer(group, name=name)
learning.federate_app.command("vertical")(vertical.vertical_cmd)  # its own module: learning.py is full


def main() -> None:
    """Console-script entry point."""
    app()
