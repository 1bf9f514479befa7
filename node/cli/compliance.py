"""``alliance-node pia``, ``feature``, ``xborder`` and ``rights``: the compliance officer's commands.

Impact assessments, the feature switches they gate, transfers abroad, and the rights-request queue.

Staff act under their own name (``--as``), which must hold an active staff key with the right
role: the audit trail names them, and an assessment's author cannot be its approver.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

if TYPE_CHECKING:
    from compliance.incidents import Incident, Notices
    from node.core.auth import Role
    from node.runtime import Node

pia_app = typer.Typer(no_args_is_help=True, help="Personal-information impact assessments (PIPL Art. 55-56).")
feature_app = typer.Typer(
    no_args_is_help=True, help="Feature switches: exchange, joint modeling, personalization, cross-border."
)
xborder_app = typer.Typer(no_args_is_help=True, help="Cross-border transfers: counters and transfer mechanisms.")
rights_app = typer.Typer(no_args_is_help=True, help="Rights requests: the staff queue and deadline escalation.")
retention_app = typer.Typer(no_args_is_help=True, help="Retention: the purge job and legal holds.")
incident_app = typer.Typer(no_args_is_help=True, help="Personal-information incidents (PIPL Art. 57).")

import node.cli.main as cli  # noqa: E402  (after the apps: node.cli imports them while it loads)

F = TypeVar("F", bound=Callable[..., object])
_HERE = Path(".")
As = Annotated[str, typer.Option("--as", help="Your staff name (it must hold an active staff key).")]


def _friendly(fn: F) -> F:
    """:func:`node.cli.friendly` plus refusals by the assessment rules, applied when the command runs."""

    @functools.wraps(fn)
    def wrapper(*args: object, **kwargs: object) -> object:
        from compliance.pia import PiaRefused

        try:
            return cli.friendly(fn)(*args, **kwargs)
        except PiaRefused as exc:
            cli._fail(f"{exc} [{exc.reason}]")
        return None

    return wrapper  # type: ignore[return-value]


def _read_toml(file: Path) -> dict[str, object]:
    """A TOML file's content, or a ValueError naming the file and the problem."""
    try:
        return tomllib.loads(file.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{file} is not valid TOML: {exc}") from exc


def _acting(node: Node, name: str, *roles: Role) -> None:
    """Act as staff member ``name`` for the audit trail, if they hold one of ``roles``."""
    from node.core.auth import Caller, current_caller

    held = node.staff_keys.roles_of(name)
    allowed = [r for r in roles if r in held]
    if not allowed:
        wanted = " or ".join(r.value for r in roles)
        cli._fail(f"{name!r} holds no active {wanted} key: see `alliance-node staff add`")
    current_caller.set(Caller(allowed[0], name))


@pia_app.command("submit")
@_friendly
def pia_submit(
    file: Annotated[Path, typer.Argument(help="The assessment as TOML, like compliance/data/pia_example.toml.")],
    author: As,
    pia_id: Annotated[str | None, typer.Option("--id", help="Its id; default: pia- and a digest.")] = None,
    data_dir: cli.DataDir = _HERE,
) -> None:
    """Submit an assessment as a draft; someone else must approve it."""
    from compliance.pia import Assessment
    from node.core.auth import Role

    assessment = Assessment.model_validate(_read_toml(file))
    node = cli._open(data_dir)
    _acting(node, author, Role.COMPLIANCE, Role.OPERATOR)
    record = node.pia.submit(assessment, author, pia_id)
    cli.out.print(f"{record.pia_id}\tdraft\tsha256 {assessment.sha256}", highlight=False)


@pia_app.command("approve")
@_friendly
def pia_approve(
    pia_id: Annotated[str, typer.Argument(help="The assessment to approve.")],
    approver: As,
    data_dir: cli.DataDir = _HERE,
) -> None:
    """Approve an assessment (compliance role; not its author)."""
    from node.core.auth import Role

    node = cli._open(data_dir)
    _acting(node, approver, Role.COMPLIANCE)
    record = node.pia.approve(pia_id, approver)
    cli.out.print(f"{pia_id}\tapproved\texpires {record.expires_at:%Y-%m-%d}", highlight=False)


@pia_app.command("list")
@_friendly
def pia_list(data_dir: cli.DataDir = _HERE) -> None:
    """List assessments: id, status, features, author, approver, expiry."""
    from compliance.pia import utcnow

    node = cli._open(data_dir)
    now = utcnow()
    for r in node.pia.all():
        expires = f"{r.expires_at:%Y-%m-%d}" if r.expires_at else "-"
        features = ",".join(f.value for f in r.assessment.features)
        line = f"{r.pia_id}\t{r.status(now).value}\t{features}\t{r.author}\t{r.approver or '-'}\t{expires}"
        cli.out.print(line, highlight=False)


@pia_app.command("report")
@_friendly
def pia_report(
    fmt: Annotated[str, typer.Option("--format", help="markdown or html")] = "markdown",
    out: Annotated[Path | None, typer.Option("--out", help="Write here instead of standard output.")] = None,
    data_dir: cli.DataDir = _HERE,
) -> None:
    """Render the assessment report from the node's real configuration, data map and counters."""
    from compliance.pia_report import document, to_html, to_markdown
    from node.runtime_facts import gather

    renderers = {"markdown": to_markdown, "md": to_markdown, "html": to_html}
    if fmt not in renderers:
        raise ValueError(f"--format must be markdown or html, not {fmt!r}")
    node = cli._open(data_dir)
    text = renderers[fmt](document(gather(node)))
    if out is None:
        print(text, end="")
    else:
        out.write_text(text)
        cli.err.print(f"wrote {out}", highlight=False)


def _feature(name: str) -> object:
    from compliance.pia import Feature

    try:
        return Feature(name)
    except ValueError:
        raise ValueError(f"unknown feature {name!r}: one of {', '.join(f.value for f in Feature)}") from None


@feature_app.command("enable")
@_friendly
def feature_enable(
    feature: Annotated[str, typer.Argument(help="points_exchange, joint_modeling, personalization or cross_border")],
    pia_id: Annotated[str, typer.Option("--pia", help="The approved assessment that covers it.")],
    by: As,
    data_dir: cli.DataDir = _HERE,
) -> None:
    """Switch a feature on under an approved, unexpired assessment (refused otherwise, and audited)."""
    from node.core.auth import Role

    node = cli._open(data_dir)
    _acting(node, by, Role.OPERATOR, Role.COMPLIANCE)
    node.pia.enable(_feature(feature), pia_id, by)  # type: ignore[arg-type]
    cli.out.print(f"{feature}\ton\t{pia_id}", highlight=False)


@feature_app.command("disable")
@_friendly
def feature_disable(
    feature: Annotated[str, typer.Argument(help="The feature to switch off.")],
    by: As,
    data_dir: cli.DataDir = _HERE,
) -> None:
    """Switch a feature off (always allowed)."""
    from node.core.auth import Role

    node = cli._open(data_dir)
    _acting(node, by, Role.OPERATOR, Role.COMPLIANCE)
    node.pia.disable(_feature(feature), by)  # type: ignore[arg-type]
    cli.out.print(f"{feature}\toff", highlight=False)


@feature_app.command("list")
@_friendly
def feature_list(data_dir: cli.DataDir = _HERE) -> None:
    """Each feature, whether it is effectively on, its assessment and why."""
    node = cli._open(data_dir)
    for feature, (on, pia_id, why) in node.pia.switches().items():
        cli.out.print(f"{feature.value}\t{'on' if on else 'off'}\t{pia_id or '-'}\t{why}", highlight=False)


@xborder_app.command("mechanism")
@_friendly
def xborder_mechanism(
    country: Annotated[str, typer.Option(help="Destination country, ISO 3166 alpha-2 (e.g. SG).")],
    kind: Annotated[str, typer.Option(help="standard_contract or security_assessment")],
    reference: Annotated[str, typer.Option(help="The filing, certificate or assessment reference.")],
    valid_until: Annotated[str, typer.Option(help="Last day it is in force, YYYY-MM-DD.")],
    by: As,
    valid_from: Annotated[str | None, typer.Option(help="First day in force (default today).")] = None,
    data_dir: cli.DataDir = _HERE,
) -> None:
    """Record a cross-border transfer mechanism in force for a country (compliance role)."""
    from compliance.egress import Mechanism
    from node.core.auth import Role

    try:
        mechanism = Mechanism(kind)
        start = date.fromisoformat(valid_from) if valid_from else date.today()
        end = date.fromisoformat(valid_until)
    except ValueError as exc:
        raise ValueError(f"{exc}: --kind is standard_contract or security_assessment, dates are YYYY-MM-DD") from exc
    node = cli._open(data_dir)
    _acting(node, by, Role.COMPLIANCE)
    rec = node.mechanisms.record(country.upper(), mechanism, reference, start, end, by)
    node.audit(
        "config.change",
        details={"setting": "xborder.mechanism", "country": rec.country, "mechanism": rec.mechanism, "ref": reference},
    )
    cli.out.print(f"{rec.country}\t{rec.mechanism}\t{rec.reference}\t{rec.valid_from}..{rec.valid_until}")


@xborder_app.command("status")
@_friendly
def xborder_status(data_dir: cli.DataDir = _HERE) -> None:
    """Distinct individuals sent abroad this year, the mechanism that requires, and what is recorded."""
    node = cli._open(data_dir)
    year = date.today().year
    general, sensitive = node.xborder.counts(year)
    cli.out.print(f"year {year}: general {general}, sensitive {sensitive}, requires {node.xborder.required(year)}")
    for m in node.mechanisms.all():
        cli.out.print(f"{m.country}\t{m.mechanism}\t{m.reference}\t{m.valid_from}..{m.valid_until}", highlight=False)


@rights_app.command("queue")
@_friendly
def rights_queue(data_dir: cli.DataDir = _HERE) -> None:
    """Open rights requests, earliest deadline first: id, kind, state, received, deadline, OVERDUE."""
    node = cli._open(data_dir)
    today = date.today()
    for r in node.rights.queue():
        flag = "OVERDUE" if r.overdue(today) else ""
        line = f"{r.dsr_id}\t{r.kind.value}\t{r.state}\t{r.received_at:%Y-%m-%d}\t{r.deadline}\t{flag}"
        cli.out.print(line.rstrip(), highlight=False)


@rights_app.command("escalate")
@_friendly
def rights_escalate(data_dir: cli.DataDir = _HERE) -> None:
    """Escalate every open request past its 15-working-day deadline (audited); run it daily."""
    node = cli._open(data_dir)
    late = node.rights.escalate()
    for r in late:
        cli.out.print(f"escalated {r.dsr_id}\t{r.kind.value}\tdue {r.deadline}", highlight=False)
    cli.out.print(f"{len(late)} request(s) past their deadline")


def _pseudonym(node: Node, member: str | None, pseudonym: str | None) -> str:
    if (member is None) == (pseudonym is None):
        raise ValueError("name the member by --member REF or, once erased, by --pseudonym HEX")
    return pseudonym if pseudonym is not None else node.keyring.pseudonym(member, create=False)  # type: ignore[arg-type]


@retention_app.command("purge")
@_friendly
def retention_purge(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what would go; delete nothing.")] = False,
    data_dir: cli.DataDir = _HERE,
) -> None:
    """Delete every record past its retention that no legal hold keeps (audited); run it daily."""
    node = cli._open(data_dir)
    r = node.retention.purge(dry_run=dry_run)
    verb = "would purge" if dry_run else "purged"
    cli.out.print(
        f"{verb}: {r.consent_records} consent records, {r.rights_requests} rights requests, "
        f"{r.xborder_counts} cross-border counts; kept under legal hold: {r.held_members_skipped}"
    )


@retention_app.command("hold")
@_friendly
def retention_hold(
    reason: Annotated[str, typer.Option(help="The case or order the hold serves.")],
    by: As,
    member: Annotated[str | None, typer.Option(help="The member's reference at this brand.")] = None,
    pseudonym: Annotated[str | None, typer.Option(help="The member's pseudonym (for an erased member).")] = None,
    data_dir: cli.DataDir = _HERE,
) -> None:
    """Place a legal hold: nothing about the member is purged or erased until it is released."""
    from node.core.auth import Role

    node = cli._open(data_dir)
    _acting(node, by, Role.COMPLIANCE)
    target = _pseudonym(node, member, pseudonym)
    node.retention.hold(target, reason, by)
    cli.out.print(f"hold placed on {target}")


@retention_app.command("release")
@_friendly
def retention_release(
    by: As,
    member: Annotated[str | None, typer.Option(help="The member's reference at this brand.")] = None,
    pseudonym: Annotated[str | None, typer.Option(help="The member's pseudonym.")] = None,
    data_dir: cli.DataDir = _HERE,
) -> None:
    """Release the legal holds on a member."""
    from node.core.auth import Role

    node = cli._open(data_dir)
    _acting(node, by, Role.COMPLIANCE)
    target = _pseudonym(node, member, pseudonym)
    if not node.retention.release(target, by):
        raise ValueError(f"no active hold on {target}")
    cli.out.print(f"holds on {target} released")


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
    cli.out.print(f"{incident.incident_id}: {incident.grade.value}, {incident.affected:,} individuals; {clock}")
    cli.out.print(f"notices written to {out_dir}", highlight=False)


@incident_app.command("drill")
@_friendly
def incident_drill(
    out: Annotated[Path, typer.Option(help="Directory for authority.txt and individuals.txt.")],
    by: As,
    data_dir: cli.DataDir = _HERE,
) -> None:
    """Rehearse an incident end to end: grade, both notices, the 4-hour clock, the audit trail."""
    from compliance.incidents import drill
    from compliance.pia import utcnow
    from node.core.auth import Role

    node = cli._open(data_dir)
    _acting(node, by, Role.COMPLIANCE)
    incident, notices = drill(utcnow())
    _notify(node, incident, notices, out)


@incident_app.command("notify")
@_friendly
def incident_notify(
    file: Annotated[Path, typer.Argument(help="The incident as TOML (the fields of compliance.incidents.Incident).")],
    out: Annotated[Path, typer.Option(help="Directory for authority.txt and individuals.txt.")],
    by: As,
    data_dir: cli.DataDir = _HERE,
) -> None:
    """Build, check and write the notices for a real incident; audit detection and notification."""
    from compliance.incidents import Incident, build_notices
    from compliance.pia import utcnow
    from node.core.auth import Role

    incident = Incident.model_validate(_read_toml(file))
    node = cli._open(data_dir)
    _acting(node, by, Role.COMPLIANCE)
    _notify(node, incident, build_notices(incident, utcnow()), out)
