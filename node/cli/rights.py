"""``alliance-node rights``, ``retention``, ``incident`` and ``decommission``: the rights-request queue,
human reviews of automated decisions and joint handlers' notices, the purge job and legal holds,
personal-information incidents, and deleting everything at the end (an entrustment's end, PIPL Art. 21)
with a signed deletion attestation.

Staff act under their own name (``--as``), which must hold an active staff key with the right
role: the audit trail names them.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from node.cli.common import (
    HERE,
    As,
    DataDir,
    FormatOption,
    OutputFormat,
    acting,
    emit_rows,
    err,
    friendly,
    open_node,
    out,
    read_toml,
    read_vkey,
)

if TYPE_CHECKING:
    from compliance.incidents import Incident, Notices
    from node.runtime import Node

rights_app = typer.Typer(
    no_args_is_help=True, help="Rights requests: the staff queue, deadline escalation, reviews of automated decisions."
)
retention_app = typer.Typer(no_args_is_help=True, help="Retention: the purge job and legal holds.")
incident_app = typer.Typer(no_args_is_help=True, help="Personal-information incidents (PIPL Art. 57).")


@rights_app.command("queue")
@friendly
def rights_queue(fmt: FormatOption = OutputFormat.TEXT, data_dir: DataDir = HERE) -> None:
    """Open rights requests, earliest deadline first: id, kind, state, received, deadline, OVERDUE."""
    node = open_node(data_dir)
    today = date.today()
    rows = [
        {
            "dsr_id": r.dsr_id,
            "kind": r.kind.value,
            "state": str(r.state),
            "received_at": r.received_at.isoformat(),
            "deadline": r.deadline.isoformat(),
            "overdue": r.overdue(today),
        }
        for r in node.rights.queue()
    ]
    emit_rows(
        rows,
        fmt,
        lambda r: (
            f"{r['dsr_id']}\t{r['kind']}\t{r['state']}\t{r['received_at'][:10]}\t{r['deadline']}"
            f"\t{'OVERDUE' if r['overdue'] else ''}"
        ),
        "no open rights requests",
    )


@rights_app.command("joint")
@friendly
def rights_joint(
    fmt: FormatOption = OutputFormat.TEXT,
    data_dir: DataDir = HERE,
    deliver: Annotated[bool, typer.Option("--deliver", help="Send every unacknowledged notice now.")] = False,
    complete: Annotated[
        tuple[str, str] | None,
        typer.Option("--complete", metavar="SENDER NOTICE", help="Mark a received correction notice done."),
    ] = None,
) -> None:
    """Notices to and from the other joint handlers still under way (PIPL Art. 20), earliest due first:
    direction, peer, notice, kind, purpose, state, due, OVERDUE; recovery passes deliver them."""
    node = open_node(data_dir)
    if complete is not None:
        if not node.joint.complete(*complete):
            raise ValueError(f"no open notice {complete[1]} from {complete[0]}: see `rights joint`")
        err.print(f"notice {complete[1]} from {complete[0]} completed", highlight=False)
    if deliver:
        node.joint.store.retry_now()
        done = node.joint.deliver()
        err.print(f"{done.acknowledged} acknowledged, {done.failed} not yet", highlight=False)
    emit_rows(
        node.joint.queue(),
        fmt,
        lambda r: (
            f"{r['direction']}\t{r['peer']}\t{r['notice']}\t{r['kind']}\t{r['purpose']}\t{r['state']}"
            f"\t{r['due']}\t{'OVERDUE' if r['overdue'] else ''}"
        ),
        "no notices to or from joint handlers under way",
    )


@rights_app.command("escalate")
@friendly
def rights_escalate(data_dir: DataDir = HERE) -> None:
    """Escalate every open request past its 15-working-day deadline (audited); serve runs it daily ([jobs])."""
    node = open_node(data_dir)
    late = node.rights.escalate()
    for r in late:
        out.print(f"escalated {r.dsr_id}\t{r.kind.value}\tdue {r.deadline}", highlight=False)
    out.print(f"{len(late)} request(s) past their deadline")
    out.print(f"{node.joint.escalate()} joint handlers' notice(s) past their due date")


def _review_lines(r: dict[str, Any]) -> str:
    d = r["decision"]
    score = "" if d["score"] is None else f" ({d['score']})"
    head = f"{r['id']}\t{d['kind']} {d['result']}{score}\tdue {r['deadline']}\t{'OVERDUE' if r['overdue'] else ''}"
    factors = ", ".join(f"{f['feature']} {f['effect']:+}" for f in d["factors"])
    inputs = ", ".join(f"{k}={v:g}" for k, v in d["inputs"].items())
    audited = "" if r["audited"] else " (NOT the record its adm.decide event pinned)"
    lines = [head.rstrip(), f"  decision {d['decision_id']}{audited}", f"  factors: {factors}", f"  inputs: {inputs}"]
    return "\n".join(lines + ([f"  statement: {r['statement']}"] if r["statement"] else []))


@rights_app.command("reviews")
@friendly
def rights_reviews(
    overdue: Annotated[bool, typer.Option("--overdue", help="Only reviews past their deadline.")] = False,
    fmt: FormatOption = OutputFormat.TEXT,
    data_dir: DataDir = HERE,
) -> None:
    """Members' contests of automated decisions waiting for a person, earliest deadline first, with each
    decision's inputs and factors."""
    node = open_node(data_dir)
    today = date.today()
    rows = [r.as_json(today, staff=True) | {"audited": node.reviews.audited(r)} for r in node.reviews.queue()]
    emit_rows([r for r in rows if r["overdue"] or not overdue], fmt, _review_lines, "no reviews waiting")


@rights_app.command("decide")
@friendly
def rights_decide(
    review_id: Annotated[str, typer.Argument(help="The review's id (from `rights reviews`).")],
    outcome: Annotated[str, typer.Option(help="upheld, or changed (then --changed-to).")],
    reasons: Annotated[str, typer.Option(help="Why: the member reads them.")],
    by: As,
    changed_to: Annotated[str | None, typer.Option(help="The decision's new result (a churn band).")] = None,
    data_dir: DataDir = HERE,
) -> None:
    """Record your verdict on a review under your name (audited as adm.human_review); the member reads it."""
    from compliance.reviews import ReviewOutcome
    from node.core.auth import Role

    if outcome not in {o.value for o in ReviewOutcome}:
        raise ValueError(f"--outcome is upheld or changed, not {outcome!r}")
    node = open_node(data_dir)
    acting(node, by, Role.COMPLIANCE)
    review = node.reviews.decide(review_id, ReviewOutcome(outcome), by, reasons, changed_to)
    result = f" to {changed_to}" if changed_to else ""
    on_time = "on time" if review.as_json(date.today())["verdict"]["on_time"] else "AFTER its deadline"
    out.print(f"review {review.review_id}: {outcome}{result}, {on_time}", highlight=False)


def _pseudonym(node: Node, member: str | None, pseudonym: str | None) -> str:
    if (member is None) == (pseudonym is None):
        raise ValueError("name the member by --member REF or, once erased, by --pseudonym HEX")
    return pseudonym if pseudonym is not None else node.keyring.pseudonym(member, create=False)  # type: ignore[arg-type]


@retention_app.command("purge")
@friendly
def retention_purge(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would go; delete nothing.")] = False,
    data_dir: DataDir = HERE,
) -> None:
    """Delete every record past its retention that no legal hold keeps (audited); serve runs it daily ([jobs])."""
    node = open_node(data_dir)
    r = node.retention.purge(dry_run=dry_run)
    verb = "would purge" if dry_run else "purged"
    out.print(
        f"{verb}: {r.consent_records} consent records, {r.rights_requests} rights requests, "
        f"{r.xborder_counts} cross-border counts; kept under legal hold: {r.held_members_skipped}"
    )


@retention_app.command("hold")
@friendly
def retention_hold(
    reason: Annotated[str, typer.Option(help="The case or order the hold serves.")],
    by: As,
    member: Annotated[str | None, typer.Option(help="The member's reference at this brand.")] = None,
    pseudonym: Annotated[str | None, typer.Option(help="The member's pseudonym (for an erased member).")] = None,
    data_dir: DataDir = HERE,
) -> None:
    """Place a legal hold: nothing about the member is purged or erased until it is released."""
    from node.core.auth import Role

    node = open_node(data_dir)
    acting(node, by, Role.COMPLIANCE)
    target = _pseudonym(node, member, pseudonym)
    node.retention.hold(target, reason, by)
    out.print(f"hold placed on {target}")


@retention_app.command("release")
@friendly
def retention_release(
    by: As,
    member: Annotated[str | None, typer.Option(help="The member's reference at this brand.")] = None,
    pseudonym: Annotated[str | None, typer.Option(help="The member's pseudonym.")] = None,
    data_dir: DataDir = HERE,
) -> None:
    """Release the legal holds on a member."""
    from node.core.auth import Role

    node = open_node(data_dir)
    acting(node, by, Role.COMPLIANCE)
    target = _pseudonym(node, member, pseudonym)
    if not node.retention.release(target, by):
        raise ValueError(f"no active hold on {target}")
    out.print(f"holds on {target} released")


def _notify(node: Node, incident: Incident, notices: Notices, out_dir: Path) -> None:
    """Audit detection and notification, write the notices, and say whether the clock was met."""
    from compliance.incidents import render_text, within_deadline

    details = {"incident_id": incident.incident_id, "grade": incident.grade.value}
    node.audit(
        "incident.detected",
        subject_count=incident.affected,
        pi_categories=list(incident.pi_categories),
        details=details | {"detected_at": f"{incident.detected_at:%Y-%m-%dT%H:%M:%SZ}"},
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "authority.txt").write_text(render_text(notices.authority))
    if notices.individuals is not None:
        (out_dir / "individuals.txt").write_text(render_text(notices.individuals))
    met = within_deadline(notices)
    node.audit(
        "incident.notified",
        subject_count=incident.affected,
        outcome="ok" if met else "error",
        reason_code=None if met else "deadline_missed",
        details=details
        | {
            "issued_at": f"{notices.authority.issued_at:%Y-%m-%dT%H:%M:%SZ}",
            "deadline": f"{notices.deadline:%Y-%m-%dT%H:%M:%SZ}" if notices.deadline else None,
            "individuals": "notified" if notices.individuals else "skipped: harm avoided",
        },
    )
    clock = (
        "no 4-hour clock (general grade)"
        if notices.deadline is None
        else ("within the 4-hour deadline" if met else "AFTER the 4-hour deadline")
    )
    out.print(f"{incident.incident_id}: {incident.grade.value}, {incident.affected:,} individuals; {clock}")
    out.print(f"notices written to {out_dir}", highlight=False)


@incident_app.command("drill")
@friendly
def incident_drill(
    out: Annotated[Path, typer.Option(help="Directory for authority.txt and individuals.txt.")],
    by: As,
    data_dir: DataDir = HERE,
) -> None:
    """Rehearse an incident end to end: grade, both notices, the 4-hour clock, the audit trail."""
    from compliance.incidents import drill
    from compliance.pia import utcnow
    from node.core.auth import Role

    node = open_node(data_dir)
    acting(node, by, Role.COMPLIANCE)
    incident, notices = drill(utcnow())
    _notify(node, incident, notices, out)


@incident_app.command("notify")
@friendly
def incident_notify(
    file: Annotated[Path, typer.Argument(help="The incident as TOML (the fields of compliance.incidents.Incident).")],
    out: Annotated[Path, typer.Option(help="Directory for authority.txt and individuals.txt.")],
    by: As,
    data_dir: DataDir = HERE,
) -> None:
    """Build, check and write the notices for a real incident; audit detection and notification."""
    from compliance.incidents import Incident, build_notices
    from compliance.pia import utcnow
    from node.core.auth import Role

    incident = Incident.model_validate(read_toml(file))
    node = open_node(data_dir)
    acting(node, by, Role.COMPLIANCE)
    _notify(node, incident, build_notices(incident, utcnow()), out)


decommission_app = typer.Typer(
    help="Decommission the node (irreversible): shred its data key and member keys, sign a deletion attestation."
)


@decommission_app.callback(invoke_without_command=True)
@friendly
def decommission_cmd(
    ctx: typer.Context,
    by: Annotated[
        str | None, typer.Option("--as", help="Your staff name (an active operator, compliance or host key).")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask: this is irreversible.")] = False,
    copy_to: Annotated[Path | None, typer.Option("--out", help="Also write the attestation here.")] = None,
    data_dir: DataDir = HERE,
) -> None:
    """Shred data.key and every member key, so no sealed field opens and no pseudonym can be recomputed;
    audit it and write the signed deletion attestation (decommissioned.note). Run with `serve` stopped;
    asks for the node id unless --yes. Afterwards the node refuses to open."""
    if ctx.invoked_subcommand is not None:
        return
    from node.core.auth import Role
    from node.ops.decommission import decommission, open_for_decommission

    if by is None:
        raise ValueError("--as NAME is required: the audit trail names who decommissioned the node")
    node = open_for_decommission(data_dir)
    try:
        acting(node, by, Role.COMPLIANCE, Role.OPERATOR, Role.HOST)
        node_id = node.settings.node_id
        question = f"This shreds {node_id}'s data key and every member key for good. Type its node id"
        if not yes and _typed(question) != node_id:
            raise ValueError("not confirmed: nothing was changed (type the node id exactly, or pass --yes)")
        done = decommission(node)
    finally:
        node.dispose()
    if copy_to is not None:
        copy_to.write_text(done.signed)
    a = done.attestation
    out.print(
        f"decommissioned {a.node_id}: data key {a.data_key}, {a.member_keys} member keys deleted,"
        f" {a.sealed_values} sealed values unreadable, write-ahead log {a.wal}",
        highlight=False,
    )
    out.print(f"deletion attestation: {done.path} (check it with node.vkey: `alliance-node decommission verify`)")


def _typed(question: str) -> str:
    """What the person typed at ``question`` ("" when there is nobody to ask: no input at all)."""
    import click

    try:
        return str(typer.prompt(question, default="", show_default=False))
    except click.exceptions.Abort:
        return ""


@decommission_app.command("verify")
@friendly
def decommission_verify(
    file: Annotated[Path, typer.Argument(help="The deletion attestation (decommissioned.note).")],
    vkey: Annotated[str, typer.Option(help="The node's verifier key, or its node.vkey file.")],
) -> None:
    """Verify a deletion attestation offline: exit 0 printing what it attests, else 1 naming the problem."""
    from compliance.attestation import verify

    a = verify(file.read_text(), read_vkey(vkey))
    out.print(
        f"OK {a.node_id} decommissioned {a.at.isoformat()} contract {a.contract_id or 'none'}: data key {a.data_key},"
        f" {a.member_keys} member keys deleted, {a.sealed_values} sealed values unreadable, write-ahead log {a.wal}",
        highlight=False,
    )
    for h in a.logs:
        out.print(f"log {h.origin} size {h.size} root {h.root.hex()}", highlight=False)
