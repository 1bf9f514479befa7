"""``alliance-node``: the command line of a brand's node."""

from __future__ import annotations

import functools
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from ledger import note
from ledger.errors import ExportError, LedgerError
from ledger.export import export_log, verify_export_file
from node.core.progress import progress_bar

if TYPE_CHECKING:
    from node.runtime import Node

# Node-side modules (SQLAlchemy, the settings) are imported inside the commands that need them,
# so `ledger verify` on an auditor's laptop starts in a fraction of a second.

app = typer.Typer(
    no_args_is_help=True,
    help="A loyalty alliance node: ledger, witnessing, API and demo.",
    pretty_exceptions_enable=False,
)
ledger_app = typer.Typer(
    no_args_is_help=True, help="The node's Merkle logs: checkpoints, export, offline verification."
)
peers_app = typer.Typer(no_args_is_help=True, help="Other brands' nodes this node witnesses and asks to witness.")
witness_app = typer.Typer(no_args_is_help=True, help="Witnessing: collect peers' cosignatures on checkpoints.")
staff_app = typer.Typer(no_args_is_help=True, help="Staff API keys (operator, compliance officer).")
app.add_typer(ledger_app, name="ledger")
app.add_typer(peers_app, name="peers")
app.add_typer(witness_app, name="witness")
app.add_typer(staff_app, name="staff")

out = Console()
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., object])

DataDir = Annotated[
    Path, typer.Option("--data-dir", envvar="ALLIANCE_DATA_DIR", help="The node's directory (config, key, database).")
]
LogName = Annotated[str, typer.Option("--log", help="Log name, e.g. audit or exchange.")]


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    raise typer.Exit(code)


def friendly(fn: F) -> F:
    """Turn expected failures into one clear line and a non-zero exit, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> object:
        try:
            return fn(*args, **kwargs)
        except (LedgerError, ValueError, LookupError, OSError) as exc:
            _fail(str(exc).strip("'\""))
        return None

    return wrapper  # type: ignore[return-value]


def _open(data_dir: Path, recover: bool = False) -> Node:
    # commands run next to a live server: only `serve` recovers the audit outbox
    from node.runtime import Node

    return Node.open(data_dir, recover=recover)


def _read_vkey(value: str) -> note.Verifier:
    path = Path(value)
    text = path.read_text() if path.is_file() else value
    return note.Verifier.from_vkey(text)


@contextmanager
def _progress(label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (quiet when stderr is not a terminal); yields an advance(n) callback."""
    with progress_bar(err, transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


@app.command()
@friendly
def init(
    node_id: Annotated[str, typer.Option(help="The node's name, e.g. airline.alliance.example; names its key.")],
    data_dir: DataDir = Path("."),
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
    from node.core.settings import VKEY_FILE
    from node.runtime import init_node

    if problem := hosting_problem(region):
        _fail(problem)
    settings = init_node(
        data_dir, node_id, display_name=display_name, region=region, host=host, port=port, database_url=database_url
    )
    out.print(f"initialised {settings.node_id} in {data_dir.resolve()}")
    out.print(f"verifier key: {(data_dir / VKEY_FILE).read_text().strip()}")


@app.command()
@friendly
def serve(
    data_dir: DataDir = Path("."),
    host: Annotated[str | None, typer.Option(help="Override the configured listen address.")] = None,
    port: Annotated[int | None, typer.Option(help="Override the configured port.")] = None,
) -> None:
    """Serve the node's API (OpenAPI at /docs) with uvicorn."""
    import uvicorn

    from compliance.egress import hosting_problem
    from node.api.app import create_app

    node = _open(data_dir, recover=True)
    if problem := hosting_problem(node.settings.region):  # the deploy check: refuse to serve from abroad
        _fail(problem)
    node.signer  # noqa: B018  fail now, not at the first request, if the key is unreadable
    app = create_app(node, recovery=True)  # resumes unfinished exchanges at start and then periodically
    uvicorn.run(app, host=host or node.settings.host, port=port or node.settings.port, log_level="info")


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
) -> None:
    """Run the alliance demo: three brands as server processes, CDNOW purchases earning points, consent,
    linked accounts, exchanges, a settlement window, liability, witnessed checkpoints, verified exports,
    and a federated churn model trained with differential privacy across the three nodes."""
    from node.demo.main import DemoError, run_demo

    base = data_dir or Path(tempfile.mkdtemp(prefix="alliance-demo-"))
    try:
        result = run_demo(
            base, out, exchanges=exchanges, federation=federation, deployment=deployment, chain=chain
        )
    except DemoError as exc:
        _fail(str(exc))
        return
    out.print(f"nodes and exports kept in {base}")
    if not result.ok:
        raise typer.Exit(1)


@ledger_app.command("list")
@friendly
def ledger_list(data_dir: DataDir = Path(".")) -> None:
    """List the node's logs with their sizes and roots."""
    node = _open(data_dir)
    for name in node.store.log_names():
        log = node.store.log(name)
        head = log.head()
        out.print(f"{name}\t{log.origin}\t{head.size}\t{head.root_hash.hex()}", highlight=False)


@ledger_app.command("checkpoint")
@friendly
def ledger_checkpoint(log: LogName, data_dir: DataDir = Path(".")) -> None:
    """Sign (if needed) and print the checkpoint of a log's current head."""
    node = _open(data_dir)
    sys.stdout.write(node.store.log(log).sign_checkpoint(node.signer))


@ledger_app.command("export")
@friendly
def ledger_export(
    log: LogName,
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the JSON Lines export.")],
    data_dir: DataDir = Path("."),
) -> None:
    """Export a log with a freshly signed checkpoint, for offline verification."""
    node = _open(data_dir)
    target = node.store.log(log)
    tmp = out_file.with_name(out_file.name + ".partial")
    with _progress(f"exporting {log}", target.size) as advance, open(tmp, "wb") as f:
        count = export_log(target, node.signer, f, progress=advance)
    tmp.replace(out_file)  # a crash mid-export never leaves a file that looks complete
    err.print(f"exported {count} entries of {log} to {out_file}")


@ledger_app.command("verify")
@friendly
def ledger_verify(
    file: Annotated[Path, typer.Argument(help="An export written by `ledger export`.")],
    vkey: Annotated[
        str, typer.Option("--vkey", help="The log owner's verifier key, or a file holding it (node.vkey).")
    ],
) -> None:
    """Verify an export offline: every leaf hash, the root, the size and the checkpoint signature."""
    verifier = _read_vkey(vkey)
    try:
        with _progress(f"verifying {file.name}", None) as advance:
            v = verify_export_file(file, verifier, progress=advance)
    except ExportError as exc:
        where = f" (first bad index: {exc.index})" if exc.index is not None else ""
        _fail(f"FAIL {exc}{where}")
        return
    out.print(f"OK {v.size} {v.root_hash.hex()}", highlight=False)


@ledger_app.command("check")
@friendly
def ledger_check(log: LogName, data_dir: DataDir = Path(".")) -> None:
    """Rehash a log from its stored data and compare with the stored hashes and head (O(n))."""
    node = _open(data_dir)
    head = node.store.log(log).recompute()
    out.print(f"OK {head.size} {head.root_hash.hex()}", highlight=False)


@staff_app.command("add")
@friendly
def staff_add(
    name: Annotated[str, typer.Option(help="Who holds the key (shown in the audit trail).")],
    role: Annotated[str, typer.Option(help="operator or compliance.")],
    data_dir: DataDir = Path("."),
) -> None:
    """Issue a staff API key; it is printed once and stored only as a hash."""
    from node.core.auth import Role

    if role not in (Role.OPERATOR, Role.COMPLIANCE):
        _fail("role must be operator or compliance")
    node = _open(data_dir)
    secret = node.staff_keys.issue(name, Role(role))
    node.audit("key.create", details={"holder": name, "role": role, "key_id": secret.split("_")[1]})
    out.print(secret, highlight=False)


@staff_app.command("revoke")
@friendly
def staff_revoke(
    key_id: Annotated[str, typer.Argument(help="The id in the key (ank_<id>_...).")],
    data_dir: DataDir = Path("."),
) -> None:
    """Revoke a staff API key."""
    node = _open(data_dir)
    if not node.staff_keys.revoke(key_id):
        _fail(f"no active key with id {key_id}")
    node.audit("key.rotate", details={"key_id": key_id, "revoked": True})
    out.print(f"revoked {key_id}")


@peers_app.command("add")
@friendly
def peers_add(
    node_id: Annotated[str, typer.Option(help="The peer's node id (its key name).")],
    vkey: Annotated[str, typer.Option(help="The peer's verifier key, or its node.vkey file.")],
    url: Annotated[str | None, typer.Option(help="The peer's API base URL, for witnessing.")] = None,
    region: Annotated[
        str, typer.Option(help="Where the peer is hosted (ISO 3166 alpha-2): egress checks use it.")
    ] = "CN",
    data_dir: DataDir = Path("."),
) -> None:
    """Trust a peer: witness its logs and ask it to witness ours."""
    verifier = _read_vkey(vkey)
    if verifier.name != node_id:
        _fail(f"the key is named {verifier.name!r}, not {node_id!r}")
    from node.core.settings import CONFIG_FILE, Peer
    from node.runtime import add_peer

    add_peer(data_dir, Peer(node_id=node_id, vkey=verifier.to_vkey(), url=url, region=region.upper()))
    out.print(f"{node_id} added to {data_dir / CONFIG_FILE}")


@peers_app.command("list")
@friendly
def peers_list(data_dir: DataDir = Path(".")) -> None:
    """List configured peers."""
    node = _open(data_dir)
    for p in node.settings.peers:
        out.print(f"{p.node_id}\t{p.region}\t{p.url or '-'}\t{p.vkey}", highlight=False)


@witness_app.command("request")
@friendly
def witness_request(log: LogName, data_dir: DataDir = Path(".")) -> None:
    """Sign a checkpoint of a log and ask every peer with a URL to cosign it over HTTP."""
    from node.peers.witnessing import HttpWitness, request_cosignatures

    node = _open(data_dir)
    witnesses = [
        HttpWitness(p.node_id, note.Verifier.from_vkey(p.vkey).cosigner(), node.outbound)
        for p in node.settings.peers
        if p.url
    ]
    if not witnesses:
        _fail("no peer has a URL: add one with `alliance-node peers add --url`")
    failed = 0
    for o in request_cosignatures(node.store.log(log), node.signer, witnesses):
        out.print(f"{o.witness}\t{o.size}\t{'cosigned' if o.ok else 'REFUSED: ' + o.detail}", highlight=False)
        failed += not o.ok
    if failed:
        raise typer.Exit(1)


def main() -> None:
    """Console-script entry point."""
    app()


def _wire_audit() -> None:
    # imported last: node.cli_audit and node.cli_compliance reuse the helpers defined above
    from node.cli.audit import audit_app
    from node.cli.compliance import (
        feature_app,
        incident_app,
        pia_app,
        retention_app,
        rights_app,
        xborder_app,
    )

    app.add_typer(audit_app, name="audit")
    app.add_typer(pia_app, name="pia")
    app.add_typer(feature_app, name="feature")
    app.add_typer(xborder_app, name="xborder")
    app.add_typer(rights_app, name="rights")
    app.add_typer(retention_app, name="retention")
    app.add_typer(incident_app, name="incident")

    from node.cli.exchange import exchange_app, settlement_app

    app.add_typer(exchange_app, name="exchange")
    app.add_typer(settlement_app, name="settlement")

    from node.cli.learning import federate_app, federation_app

    app.add_typer(federate_app, name="federate")
    app.add_typer(federation_app, name="federation")

    from node.cli.chain import chain_app

    app.add_typer(chain_app, name="chain")


_wire_audit()
