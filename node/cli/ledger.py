"""``alliance-node ledger`` and ``witness``: the node's Merkle logs, their export and offline verification,
and peers' cosignatures on their checkpoints."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ledger import note
from ledger.errors import ExportError
from ledger.export import export_log, verify_export_file
from node.cli.common import (
    HERE,
    DataDir,
    FormatOption,
    LogName,
    OutputFormat,
    emit_rows,
    err,
    fail,
    friendly,
    open_node,
    out,
    progress,
    read_vkey,
)

ledger_app = typer.Typer(
    no_args_is_help=True, help="The node's Merkle logs: checkpoints, export, offline verification."
)
witness_app = typer.Typer(no_args_is_help=True, help="Witnessing: collect peers' cosignatures on checkpoints.")


@ledger_app.command("list")
@friendly
def ledger_list(fmt: FormatOption = OutputFormat.TEXT, data_dir: DataDir = HERE) -> None:
    """List the node's logs: name, origin, size and root (hex)."""
    node = open_node(data_dir)
    rows = []
    for name in node.store.log_names():
        log = node.store.log(name)
        head = log.head()
        rows.append({"name": name, "origin": log.origin, "size": head.size, "root": head.root_hash.hex()})
    emit_rows(rows, fmt, lambda r: f"{r['name']}\t{r['origin']}\t{r['size']}\t{r['root']}")


@ledger_app.command("checkpoint")
@friendly
def ledger_checkpoint(log: LogName, data_dir: DataDir = HERE) -> None:
    """Sign (if needed) and print the checkpoint of a log's current head."""
    node = open_node(data_dir)
    sys.stdout.write(node.store.log(log).sign_checkpoint(node.signer))


@ledger_app.command("export")
@friendly
def ledger_export(
    log: LogName,
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the JSON Lines export.")],
    data_dir: DataDir = HERE,
) -> None:
    """Export a log with a freshly signed checkpoint, for offline verification.

    Refuses (exit 1, no file written) a log whose entries' data no longer hash to its stored head:
    an entry was rewritten in the database (`ledger check` says where).
    """
    node = open_node(data_dir)
    target = node.store.log(log)
    tmp = out_file.with_name(out_file.name + ".partial")
    try:
        with progress(f"exporting {log}", target.size) as advance, open(tmp, "wb") as f:
            count = export_log(target, node.signer, f, progress=advance)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a refused or failed export leaves nothing behind
        raise
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
    verifier = read_vkey(vkey)
    try:
        with progress(f"verifying {file.name}", None) as advance:
            v = verify_export_file(file, verifier, progress=advance)
    except ExportError as exc:
        where = f" (first bad index: {exc.index})" if exc.index is not None else ""
        fail(f"FAIL {exc}{where}")
        return
    out.print(f"OK {v.size} {v.root_hash.hex()}", highlight=False)


@ledger_app.command("check")
@friendly
def ledger_check(log: LogName, data_dir: DataDir = HERE) -> None:
    """Rehash a log from its stored data and compare with the stored hashes and head (O(n))."""
    node = open_node(data_dir)
    head = node.store.log(log).recompute()
    out.print(f"OK {head.size} {head.root_hash.hex()}", highlight=False)


@witness_app.command("request")
@friendly
def witness_request(log: LogName, data_dir: DataDir = HERE) -> None:
    """Sign a checkpoint of a log and ask every peer with a URL to cosign it over HTTP."""
    from node.peers.witnessing import HttpWitness, request_cosignatures

    node = open_node(data_dir)
    witnesses = [
        HttpWitness(p.node_id, note.Verifier.from_vkey(p.vkey).cosigner(), node.outbound)
        for p in node.settings.peers
        if p.url
    ]
    if not witnesses:
        fail("no peer has a URL: add one with `alliance-node peers add --url`")
    failed = 0
    for o in request_cosignatures(node.store.log(log), node.signer, witnesses):
        out.print(f"{o.witness}\t{o.size}\t{'cosigned' if o.ok else 'REFUSED: ' + o.detail}", highlight=False)
        failed += not o.ok
    if failed:
        raise typer.Exit(1)
