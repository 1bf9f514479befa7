"""``alliance-node pia``, ``feature``, ``xborder`` and ``entrustment``: impact assessments, the feature
switches they gate, transfers abroad, and the contract of a party that hosts the node (PIPL Art. 21).

Staff act under their own name (``--as``), which must hold an active staff key with the right
role: the audit trail names them, and an assessment's author cannot be its approver.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
    print_json,
    read_toml,
)

if TYPE_CHECKING:
    pass

pia_app = typer.Typer(no_args_is_help=True, help="Personal-information impact assessments (PIPL Art. 55-56).")
feature_app = typer.Typer(
    no_args_is_help=True, help="Feature switches: exchange, joint modeling, personalization, cross-border."
)
xborder_app = typer.Typer(no_args_is_help=True, help="Cross-border transfers: counters and transfer mechanisms.")
entrustment_app = typer.Typer(
    no_args_is_help=True, help="The entrustment contract of a party hosting this node (PIPL Art. 21)."
)


@pia_app.command("submit")
@friendly
def pia_submit(
    file: Annotated[Path, typer.Argument(help="The assessment as TOML, like compliance/data/pia_example.toml.")],
    author: As,
    pia_id: Annotated[str | None, typer.Option("--id", help="Its id; default: pia- and a digest.")] = None,
    data_dir: DataDir = HERE,
) -> None:
    """Submit an assessment as a draft; someone else must approve it."""
    from compliance.pia import Assessment
    from node.core.auth import Role

    assessment = Assessment.model_validate(read_toml(file))
    node = open_node(data_dir)
    acting(node, author, Role.COMPLIANCE, Role.OPERATOR)
    record = node.pia.submit(assessment, author, pia_id)
    out.print(f"{record.pia_id}\tdraft\tsha256 {assessment.sha256}", highlight=False)


@pia_app.command("approve")
@friendly
def pia_approve(
    pia_id: Annotated[str, typer.Argument(help="The assessment to approve.")],
    approver: As,
    data_dir: DataDir = HERE,
) -> None:
    """Approve an assessment (compliance role; not its author)."""
    from node.core.auth import Role

    node = open_node(data_dir)
    acting(node, approver, Role.COMPLIANCE)
    record = node.pia.approve(pia_id, approver)
    out.print(f"{pia_id}\tapproved\texpires {record.expires_at:%Y-%m-%d}", highlight=False)


@pia_app.command("list")
@friendly
def pia_list(fmt: FormatOption = OutputFormat.TEXT, data_dir: DataDir = HERE) -> None:
    """List assessments: id, status, features, author, approver, expiry."""
    from compliance.pia import utcnow

    node = open_node(data_dir)
    now = utcnow()
    rows = [
        {
            "pia_id": r.pia_id,
            "status": r.status(now).value,
            "features": [f.value for f in r.assessment.features],
            "author": r.author,
            "approver": r.approver,
            "expires_at": r.expires_at.isoformat() if r.expires_at else None,
        }
        for r in node.pia.all()
    ]
    emit_rows(
        rows,
        fmt,
        lambda r: (
            f"{r['pia_id']}\t{r['status']}\t{','.join(r['features'])}\t{r['author']}\t{r['approver'] or '-'}"
            f"\t{str(r['expires_at'] or '-')[:10]}"
        ),
        "no impact assessments yet: `alliance-node pia submit`",
    )


@pia_app.command("report")
@friendly
def pia_report(
    fmt: Annotated[str, typer.Option("--format", help="markdown or html")] = "markdown",
    out: Annotated[Path | None, typer.Option("--out", help="Write here instead of standard output.")] = None,
    lang: Annotated[str, typer.Option("--lang", help="zh-CN (for the regulator) or en.")] = "zh-CN",
    data_dir: DataDir = HERE,
) -> None:
    """Render the assessment report from the node's real configuration, data map and counters (in Chinese
    by default, in English with --lang en)."""
    from compliance.pia_report import document, to_html, to_markdown
    from node.runtime_facts import gather

    if fmt not in ("markdown", "md", "html"):
        raise ValueError(f"--format must be markdown or html, not {fmt!r}")
    doc = document(gather(open_node(data_dir)), lang)
    text = to_html(doc, lang) if fmt == "html" else to_markdown(doc)
    if out is None:
        print(text, end="")
    else:
        out.write_text(text)
        err.print(f"wrote {out}", highlight=False)


def _feature(name: str) -> object:
    from compliance.pia import Feature

    try:
        return Feature(name)
    except ValueError:
        raise ValueError(f"unknown feature {name!r}: one of {', '.join(f.value for f in Feature)}") from None


@feature_app.command("enable")
@friendly
def feature_enable(
    feature: Annotated[str, typer.Argument(help="points_exchange, joint_modeling, personalization or cross_border")],
    pia_id: Annotated[str, typer.Option("--pia", help="The approved assessment that covers it.")],
    by: As,
    data_dir: DataDir = HERE,
) -> None:
    """Switch a feature on under an approved, unexpired assessment (refused otherwise, and audited)."""
    from node.core.auth import Role

    node = open_node(data_dir)
    acting(node, by, Role.OPERATOR, Role.COMPLIANCE)
    node.pia.enable(_feature(feature), pia_id, by)  # type: ignore[arg-type]
    out.print(f"{feature}\ton\t{pia_id}", highlight=False)


@feature_app.command("disable")
@friendly
def feature_disable(
    feature: Annotated[str, typer.Argument(help="The feature to switch off.")],
    by: As,
    data_dir: DataDir = HERE,
) -> None:
    """Switch a feature off (always allowed)."""
    from node.core.auth import Role

    node = open_node(data_dir)
    acting(node, by, Role.OPERATOR, Role.COMPLIANCE)
    node.pia.disable(_feature(feature), by)  # type: ignore[arg-type]
    out.print(f"{feature}\toff", highlight=False)


@feature_app.command("list")
@friendly
def feature_list(fmt: FormatOption = OutputFormat.TEXT, data_dir: DataDir = HERE) -> None:
    """Each feature, whether it is effectively on, its assessment and why."""
    node = open_node(data_dir)
    rows = [
        {"feature": feature.value, "on": on, "pia_id": pia_id, "why": why}
        for feature, (on, pia_id, why) in node.pia.switches().items()
    ]
    emit_rows(rows, fmt, lambda r: f"{r['feature']}\t{'on' if r['on'] else 'off'}\t{r['pia_id'] or '-'}\t{r['why']}")


@xborder_app.command("mechanism")
@friendly
def xborder_mechanism(
    country: Annotated[str, typer.Option(help="Destination country, ISO 3166 alpha-2 (e.g. SG).")],
    kind: Annotated[str, typer.Option(help="standard_contract or security_assessment")],
    reference: Annotated[str, typer.Option(help="The filing, certificate or assessment reference.")],
    valid_until: Annotated[str, typer.Option(help="Last day it is in force, YYYY-MM-DD.")],
    by: As,
    valid_from: Annotated[str | None, typer.Option(help="First day in force (default today).")] = None,
    data_dir: DataDir = HERE,
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
    node = open_node(data_dir)
    acting(node, by, Role.COMPLIANCE)
    rec = node.mechanisms.record(country.upper(), mechanism, reference, start, end, by)
    node.audit(
        "config.change",
        details={"setting": "xborder.mechanism", "country": rec.country, "mechanism": rec.mechanism, "ref": reference},
    )
    out.print(f"{rec.country}\t{rec.mechanism}\t{rec.reference}\t{rec.valid_from}..{rec.valid_until}")


@xborder_app.command("status")
@friendly
def xborder_status(data_dir: DataDir = HERE) -> None:
    """Distinct individuals sent abroad this year, the mechanism that requires, and what is recorded."""
    node = open_node(data_dir)
    year = date.today().year
    general, sensitive = node.xborder.counts(year)
    out.print(f"year {year}: general {general}, sensitive {sensitive}, requires {node.xborder.required(year)}")
    for m in node.mechanisms.all():
        out.print(f"{m.country}\t{m.mechanism}\t{m.reference}\t{m.valid_from}..{m.valid_until}", highlight=False)


@entrustment_app.command("set")
@friendly
def entrustment_set(
    file: Annotated[
        Path, typer.Argument(help="The contract's terms as TOML, like compliance/data/entrustment_example.toml.")
    ],
    by: As,
    data_dir: DataDir = HERE,
) -> None:
    """Record the contract with the party hosting this node (compliance role): purpose, duration, method,
    PI categories, protections, what happens at the end, subcontractors with the brand's consent; audited."""
    from compliance.entrustment import Entrustment, save_entrustment, summary
    from node.core.auth import Role

    terms = Entrustment.model_validate(read_toml(file))
    node = open_node(data_dir)
    acting(node, by, Role.COMPLIANCE)
    path = save_entrustment(node.settings.data_dir, terms)
    node.audit(
        "config.change",
        recipient=terms.recipient(),
        pi_categories=list(terms.pi_categories),
        details={"setting": "entrustment"} | summary(terms),
    )
    out.print(
        f"{terms.contract_id}\t{terms.party.name}\t{terms.valid_from}..{terms.valid_until}\tat end: {terms.at_end}"
        f"\t{path}",
        highlight=False,
    )


@entrustment_app.command("show")
@friendly
def entrustment_show(fmt: FormatOption = OutputFormat.TEXT, data_dir: DataDir = HERE) -> None:
    """The recorded entrustment contract, if the node is hosted under one."""
    from compliance.entrustment import load_entrustment

    terms = load_entrustment(data_dir)
    if fmt is OutputFormat.JSON:
        print_json(terms.model_dump(mode="json") if terms else None)
        return
    if terms is None:
        out.print("no entrustment contract recorded: `alliance-node entrustment set`")
        return
    for field, value in terms.model_dump(mode="json").items():
        if field == "party":
            value = f"{value['name']} <{value['contact']}>"
        elif field == "subcontractors":
            value = "; ".join(f"{s['name']} (brand consent {s['brand_consent']})" for s in value) or "none"
        elif isinstance(value, list):
            value = "; ".join(value)
        out.print(f"{field}\t{value}", highlight=False)
