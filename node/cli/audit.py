"""``alliance-node audit``: filtered, signed exports of the audit trail and their offline verification."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from node.cli.common import HERE, DataDir, err, friendly, open_node, out, progress, read_vkey

if TYPE_CHECKING:
    from compliance.audit import AuditFilter

audit_app = typer.Typer(
    no_args_is_help=True,
    help="The audit trail: filtered exports for compliance officers, verifiable offline with node.vkey.",
)


def _when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        ts = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{option} {value!r} is not an ISO 8601 time, e.g. 2026-11-01T00:00:00Z") from exc
    if ts.tzinfo is None:
        raise ValueError(f"{option} {value!r} has no time zone: add Z or an offset such as +08:00")
    return ts


def _filter(**criteria: object) -> AuditFilter:
    from pydantic import ValidationError

    from compliance.audit import AuditFilter

    try:
        return AuditFilter.model_validate(criteria)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(
            f"bad filter{' ' + where if where else ''}: {first['msg'].removeprefix('Value error, ')}"
        ) from exc


@audit_app.command("export")
@friendly
def audit_export(
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the bundle (JSON Lines).")],
    data_dir: DataDir = HERE,
    from_ts: Annotated[
        str | None, typer.Option("--from", help="Events at or after this ISO 8601 time (with a zone).")
    ] = None,
    to_ts: Annotated[str | None, typer.Option("--to", help="Events before this ISO 8601 time (exclusive).")] = None,
    action: Annotated[
        str | None, typer.Option("--action", help="An action (consent.grant) or a family ending in '.' (consent.).")
    ] = None,
    purpose: Annotated[
        str | None, typer.Option("--purpose", help="A purpose code, or a family ending in ':' (points_exchange:).")
    ] = None,
    member: Annotated[
        str | None, typer.Option("--member", help="The member's reference at this brand (selected by pseudonym).")
    ] = None,
    recipient: Annotated[str | None, typer.Option("--recipient", help="The id of a recipient of PI.")] = None,
) -> None:
    """Export the audit events a filter selects, with inclusion proofs and a signed manifest; the export is audited."""
    from compliance.pseudonyms import MemberErasedError
    from node.core.auth import Caller, Role, current_caller

    when_from, when_to = _when(from_ts, "--from"), _when(to_ts, "--to")
    node = open_node(data_dir)
    subject = None
    if member is not None:
        try:
            subject = node.keyring.pseudonym(member, create=False)
        except MemberErasedError as exc:
            raise ValueError(
                f"member {member!r} has no pseudonym here: unknown at this node, or erased (key shredded), "
                "so their events can no longer be selected by reference"
            ) from exc
    flt = _filter(
        from_ts=when_from, to_ts=when_to, action=action, purpose=purpose, subject=subject, recipient=recipient
    )
    log = node.store.log("audit")
    tmp = out_file.with_name(out_file.name + ".partial")
    token = current_caller.set(Caller(Role.OPERATOR, "cli"))  # the export is audited as the CLI operator's
    try:
        with progress("exporting audit", log.size) as advance, open(tmp, "wb") as f:
            manifest = node.audit.export(flt, f, progress=advance)
    except BaseException:
        tmp.unlink(missing_ok=True)  # no bundle leaves the node unless its export is in the audit trail
        raise
    finally:
        current_caller.reset(token)
    tmp.replace(out_file)
    err.print(f"exported {manifest.count} of {manifest.tree_size} audit events to {out_file}", highlight=False)


@audit_app.command("verify")
@friendly
def audit_verify(
    file: Annotated[Path, typer.Argument(help="A bundle written by `audit export`.")],
    vkey: Annotated[str, typer.Option("--vkey", help="The node's verifier key, or a file holding it (node.vkey).")],
) -> None:
    """Verify a bundle offline; print `OK <events> <tree size> <root hex>` or name the first bad event."""
    from compliance.audit_bundle import BundleError, verify_bundle

    verifier = read_vkey(vkey)
    try:
        with open(file, "rb") as f:
            v = verify_bundle(f, verifier)
    except BundleError as exc:
        where = f" (first bad event: {exc.index})" if exc.index is not None else ""
        err.print(f"[red]error:[/red] FAIL {escape(str(exc))}{where}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from exc
    out.print(f"OK {v.count} {v.tree_size} {v.root_hash.hex()}", highlight=False, soft_wrap=True)
