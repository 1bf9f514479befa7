"""``alliance-node peers`` and ``staff``: who this node trusts and talks to, and who may call its API."""

from __future__ import annotations

from typing import Annotated

import typer

from node.cli.common import (
    HERE,
    DataDir,
    FormatOption,
    OutputFormat,
    emit_rows,
    fail,
    friendly,
    open_node,
    out,
    read_vkey,
)

peers_app = typer.Typer(no_args_is_help=True, help="Other brands' nodes this node witnesses and asks to witness.")
staff_app = typer.Typer(no_args_is_help=True, help="Staff API keys (operator, compliance officer, entrusted host).")


@peers_app.command("add")
@friendly
def peers_add(
    node_id: Annotated[str, typer.Option(help="The peer's node id (its key name).")],
    vkey: Annotated[str, typer.Option(help="The peer's verifier key, or its node.vkey file.")],
    url: Annotated[str | None, typer.Option(help="The peer's API base URL, for witnessing.")] = None,
    region: Annotated[
        str, typer.Option(help="Where the peer is hosted (ISO 3166 alpha-2): egress checks use it.")
    ] = "CN",
    data_dir: DataDir = HERE,
) -> None:
    """Trust a peer: witness its logs and ask it to witness ours."""
    verifier = read_vkey(vkey)
    if verifier.name != node_id:
        fail(f"the key is named {verifier.name!r}, not {node_id!r}")
    from node.core.datadir import add_peer
    from node.core.settings import CONFIG_FILE, Peer

    add_peer(data_dir, Peer(node_id=node_id, vkey=verifier.to_vkey(), url=url, region=region.upper()))
    out.print(f"{node_id} added to {data_dir / CONFIG_FILE}")


@peers_app.command("list")
@friendly
def peers_list(fmt: FormatOption = OutputFormat.TEXT, data_dir: DataDir = HERE) -> None:
    """List configured peers: node id, region, URL and verifier key."""
    node = open_node(data_dir)
    rows = [{"node_id": p.node_id, "region": p.region, "url": p.url, "vkey": p.vkey} for p in node.settings.peers]
    line = lambda r: f"{r['node_id']}\t{r['region']}\t{r['url'] or '-'}\t{r['vkey']}"  # noqa: E731
    emit_rows(rows, fmt, line, "no peers yet: `alliance-node peers add`")


@staff_app.command("add")
@friendly
def staff_add(
    name: Annotated[str, typer.Option(help="Who holds the key (shown in the audit trail).")],
    role: Annotated[str, typer.Option(help="operator, compliance, or host (an entrusted party hosting the node).")],
    data_dir: DataDir = HERE,
) -> None:
    """Issue a staff API key; it is printed once and stored only as a hash. A host key needs an
    entrustment contract in force (`alliance-node entrustment set`)."""
    from datetime import date

    from compliance.entrustment import load_entrustment
    from node.core.auth import Role

    if role not in (Role.OPERATOR, Role.COMPLIANCE, Role.HOST):
        fail("role must be operator, compliance or host")
    node = open_node(data_dir)
    terms = load_entrustment(node.settings.data_dir) if role == Role.HOST else None
    if role == Role.HOST and (terms is None or not terms.in_force(date.today())):
        fail("a host is entrusted only under a contract in force (PIPL Art. 21): `alliance-node entrustment set`")
    secret = node.staff_keys.issue(name, Role(role))
    node.audit(
        "key.create",
        recipient=terms.recipient() if terms else None,
        details={"holder": name, "role": role, "key_id": secret.split("_")[1]},
    )
    out.print(secret, highlight=False)


@staff_app.command("revoke")
@friendly
def staff_revoke(
    key_id: Annotated[str, typer.Argument(help="The id in the key (ank_<id>_...).")],
    data_dir: DataDir = HERE,
) -> None:
    """Revoke a staff API key."""
    node = open_node(data_dir)
    if not node.staff_keys.revoke(key_id):
        fail(f"no active key with id {key_id}")
    node.audit("key.rotate", details={"key_id": key_id, "revoked": True})
    out.print(f"revoked {key_id}")
