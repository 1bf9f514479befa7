"""``alliance-node audit``: filtered, signed exports of the audit trail and their offline verification."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from node.cli.common import (
    HERE,
    DataDir,
    OutputFormat,
    emit_rows,
    err,
    friendly,
    open_node,
    out,
    progress,
    read_vkey,
)

if TYPE_CHECKING:
    from compliance.audit import AuditFilter
    from node.runtime import Node

provisions_app = typer.Typer(
    no_args_is_help=True,
    help="Records of provision: every transfer of personal information to another node (PIPL Art. 23).",
)


class ReportFormat(StrEnum):
    """How the provision report prints."""

    TEXT = "text"
    CSV = "csv"
    JSON = "json"


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
    provisions: Annotated[
        bool, typer.Option("--provisions", help="Only the records of provision (pi.provide, xborder.transfer).")
    ] = False,
) -> None:
    """Export the audit events a filter selects, with inclusion proofs and a signed manifest; the export is audited."""
    from compliance.provisions import PROVISION_FILTER
    from node.core.auth import Caller, Role, current_caller

    if provisions and action is not None:
        raise ValueError("--provisions selects the actions itself: leave out --action")
    action = PROVISION_FILTER if provisions else action
    when_from, when_to = _when(from_ts, "--from"), _when(to_ts, "--to")
    node = open_node(data_dir)
    subject = _subject(node, member)
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


def _subject(node: Node, member: str | None) -> str | None:
    from compliance.pseudonyms import MemberErasedError

    if member is None:
        return None
    try:
        return node.keyring.pseudonym(member, create=False)
    except MemberErasedError as exc:
        raise ValueError(
            f"member {member!r} has no pseudonym here: unknown at this node, or erased (key shredded), "
            "so their events can no longer be selected by reference"
        ) from exc


@provisions_app.command("report")
@friendly
def provisions_report(
    data_dir: DataDir = HERE,
    recipient: Annotated[str | None, typer.Option("--recipient", help="Only provisions to this node id.")] = None,
    from_ts: Annotated[str | None, typer.Option("--from", help="At or after this ISO 8601 time (with a zone).")] = None,
    to_ts: Annotated[str | None, typer.Option("--to", help="Before this ISO 8601 time (exclusive).")] = None,
    member: Annotated[
        str | None, typer.Option("--member", help="Only provisions about this member (their reference here).")
    ] = None,
    fmt: Annotated[
        ReportFormat, typer.Option("--format", help="text (for people), csv (for a spreadsheet) or json.")
    ] = ReportFormat.TEXT,
) -> None:
    """Who received what about whom, when, on what basis: the records of provision (PIPL Art. 23), from the audit
    trail; `audit export --provisions` with the same filter proves them offline."""
    from compliance.provisions import PROVISION_FILTER, report, to_csv, to_json

    node = open_node(data_dir)
    flt = _filter(
        from_ts=_when(from_ts, "--from"),
        to_ts=_when(to_ts, "--to"),
        action=PROVISION_FILTER,
        subject=_subject(node, member),
        recipient=recipient,
    )
    rows = report(node.audit.select(flt))
    if fmt is ReportFormat.CSV:
        print(to_csv(rows), end="")
    elif fmt is ReportFormat.JSON:
        print(to_json(rows))
    else:
        emit_rows(
            [r.__dict__ for r in rows],
            OutputFormat.TEXT,
            lambda r: (
                f"{r['at']}\t{r['recipient']} ({r['recipient_role']})\t{r['purpose']}\t{r['legal_basis']}\t"
                f"{r['pi_categories']}\t{r['individuals']} individuals\t{r['carried_by']} "
                f"{r['signature_digest'][:16]}"
            ),
            empty="no records of provision match",
        )


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
