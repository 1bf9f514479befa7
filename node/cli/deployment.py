"""``alliance-node federation``: the same federated runs on Flower's Deployment Engine, across machines.

One SuperLink, and one SuperNode per brand's node, each loading :mod:`node.clientapp` against its
own data directory; TLS from a run CA and SuperNode authentication by default. ``federate`` runs
the same apps in one process (simulation, local nodes) and keeps the privacy budget.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from node.cli.common import (
    CutoffOpt,
    DataDir,
    EpsilonOpt,
    HorizonOpt,
    JsonOpt,
    NodesOpt,
    RoundsOpt,
    RunOpt,
    err,
    fail,
    friendly,
    out,
)
from node.cli.learning import run_over_nodes

federation_app = typer.Typer(
    no_args_is_help=True,
    help="Flower's Deployment Engine across machines: a SuperLink, one SuperNode per node, their keys and TLS "
    "(`federate` runs in one process and keeps the privacy budget).",
)


@federation_app.command("run")
@friendly
def deployment_run_cmd(
    node: NodesOpt,
    run: RunOpt,
    epsilon: EpsilonOpt = 3.0,
    rounds: RoundsOpt = 5,
    cutoff: CutoffOpt = None,
    horizon_end: HorizonOpt = None,
    secure: Annotated[
        bool, typer.Option("--secure/--insecure", help="TLS and SuperNode authentication (default) or plain.")
    ] = True,
    work_dir: Annotated[
        Path | None, typer.Option("--work-dir", help="Where the SuperLink's state, keys, certificates and logs go.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the joint churn model on Flower's Deployment Engine across nodes on this machine.

    Starts a SuperLink (runtime dependency installation disabled, FLWR_HOME in the work directory,
    free ports on 127.0.0.1) and one SuperNode per node, with TLS from a CA made for the run and each
    SuperNode's EC key registered with the SuperLink (--secure, the default); streams each round;
    stops every process at the end, also on failure or Ctrl-C. The commands it ran are in
    WORK_DIR/commands.log, the processes' output in WORK_DIR/logs/.
    """
    from node.learning.deploy import DeploymentError
    from node.learning.run import on_deployment_engine

    work = work_dir or Path(tempfile.mkdtemp(prefix="alliance-flower-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        run_over_nodes(
            node,
            run,
            epsilon,
            rounds,
            cutoff,
            horizon_end,
            as_json,
            on_deployment_engine(work, secure=secure),
            "starting the SuperLink and SuperNodes, then federated rounds",
            {"work_dir": str(work)},
        )
    except DeploymentError as exc:
        fail(f"{exc} (work directory {work})")


@federation_app.command("keygen")
@friendly
def keygen_cmd(
    name: Annotated[str, typer.Option("--name", help="The SuperNode's name (e.g. the brand).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Directory for NAME (private) and NAME.pub.")] = Path("."),
) -> None:
    """Make a SuperNode's EC P-384 key pair (OpenSSH format) for node authentication.

    Send NAME.pub to the SuperLink's operator, who registers it with
    `flwr supernode register NAME.pub <connection> --name NAME`; keep NAME on the brand's host.
    """
    from node.learning.deploy import make_supernode_key

    private, public = make_supernode_key(out_dir, name)
    out.print(f"private key {private} (keep it here), public key {public} (send it to the SuperLink operator)")


@federation_app.command("superlink")
@friendly
def superlink_cmd(
    work_dir: Annotated[Path, typer.Option("--work-dir", help="The SuperLink's state, certificates and FLWR_HOME.")],
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port for Fleet, Control and Runtime APIs.")] = 9092,
    secure: Annotated[
        bool, typer.Option("--secure/--insecure", help="TLS and SuperNode auth (default) or plain.")
    ] = True,
) -> None:
    """Run a SuperLink in the foreground for a multi-host alliance, with the alliance's flags.

    With --secure (the default) a CA and a server certificate are made in WORK_DIR/tls on first
    use (for the host name given and 127.0.0.1): give WORK_DIR/tls/ca.crt to every brand, register
    each brand's public key (`alliance-node federation keygen` on their side) with
    `FLWR_HOME=WORK_DIR/flwr-home flwr supernode register KEY.pub alliance --name BRAND`.
    Runtime dependency installation is always disabled.
    """
    from node.learning.deploy import Tls, flower_env, make_tls, superlink_command

    work_dir.mkdir(parents=True, exist_ok=True)
    tls = None
    if secure:
        tls = Tls(work_dir / "tls" / "ca.crt", work_dir / "tls" / "server.pem", work_dir / "tls" / "server.key")
        if not tls.ca.exists():
            tls = make_tls(work_dir / "tls", extra_names=[host])
    home = work_dir / "flwr-home"
    home.mkdir(exist_ok=True)
    address = f"{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    conn = [f'address = "{address}"', f'root-certificates = "{tls.ca}"' if tls else "insecure = true"]
    (home / "config.toml").write_text("[superlink.alliance]\n" + "\n".join(conn) + "\n", encoding="utf-8")
    args = superlink_command(work_dir / "superlink.db", host, port, tls)
    err.print(" ".join(args), highlight=False)
    os.execvpe(args[0], args, flower_env(home))


@federation_app.command("supernode")
@friendly
def supernode_cmd(
    data_dir: DataDir,
    superlink: Annotated[str, typer.Option("--superlink", help="The SuperLink's HOST:PORT.")],
    ca: Annotated[Path | None, typer.Option("--ca", help="The alliance CA certificate (TLS).")] = None,
    key: Annotated[
        Path | None, typer.Option("--key", help="This SuperNode's private key (from `federation keygen`).")
    ] = None,
    port: Annotated[int, typer.Option("--port", help="Local port for the ClientApp API.")] = 9094,
) -> None:
    """Run this node's SuperNode in the foreground: the ClientApp reaches the node's data only through
    its consent-gated loader. Give --ca and --key for TLS and node authentication; without both the
    SuperNode runs insecure (for a SuperLink started with --insecure)."""
    from node.learning.deploy import flower_env, supernode_command

    if (ca is None) != (key is None):
        fail("give both --ca and --key (TLS and node authentication), or neither", 2)
    for f in (ca, key):
        if f is not None and not f.exists():
            fail(f"{f}: no such file", 2)
    args = supernode_command(data_dir, superlink, port, ca, key)
    err.print(" ".join(args), highlight=False)
    os.execvpe(args[0], args, flower_env(data_dir / "flwr-home"))
