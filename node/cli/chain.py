"""``alliance-node chain``: the node's logs against the checkpoints anchored on an EVM chain."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from node.cli.common import DataDir, fail, friendly, open_node, out

chain_app = typer.Typer(no_args_is_help=True, help="Anchoring on an EVM chain (optional per alliance).")


@chain_app.command("verify")
@friendly
def verify_cmd(
    data_dir: DataDir,
    rpc: Annotated[str, typer.Option("--rpc", help="The chain's JSON-RPC URL, e.g. http://127.0.0.1:8545.")],
    anchor: Annotated[str, typer.Option("--anchor", help="Address of the alliance's Anchor contract.")],
) -> None:
    """Check every local log against every root anchored for its origin: its entries' data rehashed,
    and consistency proofs from its stored tree.

    Exit 1 listing each divergence (the local log does not extend an anchored root, or its data no
    longer match its stored tree: it was rewritten) and each gap (an anchor beyond the local size:
    entries lost or rolled back).
    """
    from web3 import Web3

    from contracts.client import Chain, ChainRefused, read_anchors
    from contracts.verify import check_against_chain

    if not Web3.is_address(anchor):
        fail(f"--anchor {anchor!r} is not an address", 2)
    try:
        chain = Chain.connect(rpc)
    except ChainRefused as exc:
        fail(str(exc), 2)
        return
    contract = chain.contract("Anchor", Web3.to_checksum_address(anchor))
    node = open_node(data_dir)
    bad = 0
    try:
        for name in node.store.log_names():
            log = node.store.log(name)
            findings = check_against_chain(log, read_anchors(contract, log.origin))
            if not findings:
                out.print(f"{log.origin}\tsize {log.size}\tnot anchored", highlight=False)
            for f in findings:
                bad += not f.ok
                mark = "ok" if f.ok else f.kind.upper()
                where = "anchored size" if f.anchored else "local size"
                out.print(f"{log.origin}\t{where} {f.size}\t{mark}\t{f.detail}", highlight=False)
    finally:
        node.dispose()
    if bad:
        raise typer.Exit(1)


@chain_app.command("close")
@friendly
def close_cmd(
    data_dir: DataDir,
    report: Annotated[Path, typer.Option("--report", help="The window's `settlement report --format json` output.")],
) -> None:
    """Close the report's settlement window on chain with its net positions, from this node's account.

    Every brand of the registry file is named, a brand without an exchange in the window at 0. The
    contract refuses (exit 1, with its reason) while any pair of the brands is not confirmed by
    matching statement hashes, while a dispute is open, if the positions do not sum to zero, or if
    a brand is registered on chain but missing from the registry file ("every brand must be named").
    """
    from contracts.client import ChainRefused
    from node.chain.settlement import ChainSettlement
    from node.settlement.statements import Window

    try:
        body = json.loads(report.read_text(encoding="utf-8"))
        window = Window(datetime.fromisoformat(body["window"]["start"]), datetime.fromisoformat(body["window"]["end"]))
        positions = {str(k): int(v) for k, v in body["positions_fen"].items()}
    except (KeyError, TypeError, ValueError) as exc:
        fail(f"{report}: not a settlement report with a window ({exc})", 2)
        return
    node = open_node(data_dir)
    try:
        chain = ChainSettlement.from_settings(node.settings)
        if chain is None:
            fail("no chain configured: set chain_rpc_url, chain_settlement_address and chain_account", 2)
            return
        brands = [b.node_id for b in node.registry.brands]  # a brand with no exchange must be named too, at 0
        try:
            closed = chain.close(window, positions, brands)
        except ChainRefused as exc:
            # every brand of the file was named, so the chain knows a brand the file does not
            hint = (
                " (a brand registered on chain is missing from the registry file)"
                if "every brand" in exc.reason
                else ""
            )
            fail(f"the settlement contract refused: {exc.reason}{hint}")
            return
    finally:
        node.dispose()
    out.print(f"window {window.start.isoformat()} - {window.end.isoformat()} closed on chain: {closed}")


def _owner_chain(rpc: str, key_file: Path | None, account: str | None):  # type: ignore[no-untyped-def]
    """The chain and the owner account commands act from (a local key, or an unlocked account)."""
    from web3 import Web3

    from contracts.client import Chain

    chain = Chain.connect(rpc)
    if key_file is not None:
        return chain, chain.use_key(key_file.read_text(encoding="ascii").strip())
    if account is None or not Web3.is_address(account):
        fail("give --key-file, or --from with an account unlocked on the node", 2)
    return chain, Web3.to_checksum_address(account)


KeyFile = Annotated[Path | None, typer.Option("--key-file", help="Hex private key of the owner (signed locally).")]
FromAccount = Annotated[str | None, typer.Option("--from", help="The owner's account, unlocked on the node.")]
Rpc = Annotated[str, typer.Option("--rpc", help="The chain's JSON-RPC URL.")]


@chain_app.command("deploy")
@friendly
def deploy_cmd(rpc: Rpc, key_file: KeyFile = None, account: FromAccount = None) -> None:
    """Deploy the alliance's Registry (owned by the sender), Anchor and Settlement contracts; print the
    addresses each node puts in its settings (chain_anchor_address, chain_settlement_address)."""
    from contracts.client import Alliance, ChainRefused

    try:
        chain, owner = _owner_chain(rpc, key_file, account)
        deployed = Alliance.deploy(chain, owner)
    except ChainRefused as exc:
        fail(str(exc))
        return
    for name, address in deployed.addresses.items():
        out.print(f"{name}\t{address}", highlight=False)


@chain_app.command("register")
@friendly
def register_cmd(
    rpc: Rpc,
    registry: Annotated[str, typer.Option("--registry", help="Address of the alliance's Registry contract.")],
    brand: Annotated[str, typer.Option("--brand", help="The brand node's chain account.")],
    node_id: Annotated[str, typer.Option("--node-id", help="The brand's node id (its log origins' prefix).")],
    key_file: KeyFile = None,
    account: FromAccount = None,
) -> None:
    """Register a brand (owner only): its account may then anchor its own logs and settle."""
    from web3 import Web3

    from contracts.client import ChainRefused

    for value, what in ((registry, "--registry"), (brand, "--brand")):
        if not Web3.is_address(value):
            fail(f"{what} {value!r} is not an address", 2)
    try:
        chain, owner = _owner_chain(rpc, key_file, account)
        contract = chain.contract("Registry", Web3.to_checksum_address(registry))
        chain.send(contract.functions.add_brand(Web3.to_checksum_address(brand), node_id), owner)
    except ChainRefused as exc:
        fail(f"the registry refused: {exc.reason}")
        return
    out.print(f"{node_id} registered as {Web3.to_checksum_address(brand)}")
