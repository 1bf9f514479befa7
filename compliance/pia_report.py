"""The impact-assessment report: the node's real configuration, data map and counters, as Markdown or HTML.

Pure: :class:`ReportFacts` is gathered by the node from its settings and stores; this module
only lays it out. Both formats come from one document model so they never disagree.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime

from compliance.egress import Mechanism
from compliance.notices import PIPO_THRESHOLD
from compliance.pia import Feature, PiaRecord
from compliance.purposes import catalogue

__all__ = ["PIPO_THRESHOLD", "ReportFacts", "document", "to_html", "to_markdown"]


@dataclass(frozen=True)
class PeerFact:
    """A peer node as configured."""

    node_id: str
    region: str
    url: str | None


@dataclass(frozen=True)
class MechanismFact:
    """A recorded cross-border transfer mechanism."""

    country: str
    mechanism: str
    reference: str
    valid_until: str


@dataclass(frozen=True)
class ReportFacts:
    """Everything the report states, read from the running node."""

    generated_at: datetime
    node_id: str
    display_name: str
    region: str
    allowed_regions: tuple[str, ...]
    peers: tuple[PeerFact, ...]
    notice_version: int | None
    notice_sha256: str | None
    pipo_contact: str | None
    members: int
    consents: dict[str, int]
    xborder_year: int
    xborder_general: int
    xborder_sensitive: int
    xborder_required: Mechanism
    mechanisms: tuple[MechanismFact, ...]
    assessments: tuple[PiaRecord, ...]
    switches: dict[Feature, tuple[bool, str | None, str]]
    open_requests: int = 0
    overdue_requests: int = 0
    extra: dict[str, str] = field(default_factory=dict)


Block = tuple  # ("h", level, text) | ("p", text) | ("ul", [items]) | ("table", headers, rows)


def document(f: ReportFacts) -> list[Block]:
    """The report as a list of blocks, in reading order."""
    cat = catalogue()
    now = f.generated_at
    notice = f"v{f.notice_version} sha256 {f.notice_sha256}" if f.notice_version else "none published"
    doc: list[Block] = [
        ("h", 1, f"Personal information impact assessment: {f.display_name or f.node_id}"),
        (
            "p",
            f"Generated {now:%Y-%m-%d %H:%M} UTC from the live configuration of node {f.node_id}. "
            "PIPL Art. 55-56; method after GB/T 39335 (data map, impact, likelihood, risk level, measures). "
            "Engineering record, not legal advice.",
        ),
        ("h", 2, "1. Processing environment"),
        (
            "table",
            ["item", "value"],
            [
                ["node", f.node_id],
                ["hosting region", f.region],
                ["regions allowed to receive PI", ", ".join(f.allowed_regions)],
                ["current privacy notice", notice],
                ["PI protection officer contact", f.pipo_contact or "not published"],
                ["registered members", f"{f.members:,}"],
            ],
        ),
        ("h", 3, "Recipients (peer nodes)"),
        (
            "table",
            ["node", "region", "endpoint", "cross-border"],
            [[p.node_id, p.region, p.url or "-", "yes" if p.region != f.region else "no"] for p in f.peers],
        )
        if f.peers
        else ("p", "No peers are configured: nothing leaves this node."),
        ("h", 2, "2. Data map"),
        ("p", "Each purpose, its legal basis (PIPL Art. 13), the consent it needs and the PI categories it may use."),
        (
            "table",
            ["purpose", "legal basis", "consent", "PI categories", "members consenting now"],
            [
                [
                    code,
                    spec["legal_basis"],
                    spec["consent"],
                    ", ".join(
                        c + (" (sensitive)" if cat.categories[c].sensitive else "") for c in spec["pi_categories"]
                    )
                    or "the named sensitive category",
                    _consenting(code, spec, f.consents),
                ]
                for code, spec in cat.families.items()
            ],
        ),
        ("h", 2, "3. Cross-border transfers"),
        (
            "p",
            f"Distinct individuals sent abroad in {f.xborder_year}: {f.xborder_general:,} general, "
            f"{f.xborder_sensitive:,} sensitive. Mechanism required at these counts: {f.xborder_required.value} "
            "(2024 Cross-Border Provisions: standard contract from 100,000 general or any sensitive, "
            "security assessment from 1,000,000 general or 10,000 sensitive).",
        ),
        (
            "table",
            ["country", "mechanism", "reference", "valid until"],
            [[m.country, m.mechanism, m.reference, m.valid_until] for m in f.mechanisms],
        )
        if f.mechanisms
        else ("p", "No transfer mechanism is recorded."),
        ("h", 2, "4. Thresholds and duties"),
        (
            "ul",
            [
                (
                    f"PI protection officer: {f.members:,} members "
                    + (
                        f"- at or above {PIPO_THRESHOLD:,}: ALERT, appoint a PIPO, publish the contact and "
                        "report to the city-level CAC within 30 working days"
                        if f.members >= PIPO_THRESHOLD
                        else f"- below {PIPO_THRESHOLD:,}, no PIPO filing is due"
                    )
                ),
                f"Rights requests open: {f.open_requests}; past their 15-working-day deadline: {f.overdue_requests}",
            ],
        ),
        ("h", 2, "5. Feature switches"),
        (
            "table",
            ["feature", "state", "assessment", "why"],
            [
                [feat.value, "ON" if on else "off", pia or "-", why.replace("_", " ")]
                for feat, (on, pia, why) in f.switches.items()
            ],
        ),
        ("h", 2, "6. Assessments"),
    ]
    if not f.assessments:
        doc.append(("p", "No assessment has been submitted: every feature that needs one stays off."))
    for rec in f.assessments:
        a = rec.assessment
        doc += [
            ("h", 3, f"{rec.pia_id}: {a.title} ({rec.status(now).value})"),
            (
                "table",
                ["item", "value"],
                [
                    ["features", ", ".join(x.value for x in a.features)],
                    ["purposes", ", ".join(a.purposes)],
                    ["author", f"{rec.author}, {rec.submitted_at:%Y-%m-%d}"],
                    ["approved", f"{rec.approver}, {rec.approved_at:%Y-%m-%d}" if rec.approved_at else "not yet"],
                    ["expires", f"{rec.expires_at:%Y-%m-%d}" if rec.expires_at else "-"],
                    ["kept until", f"{rec.retain_until:%Y-%m-%d}"],
                    ["likelihood / risk level", f"{a.likelihood.value} / {a.risk_level.value}"],
                    ["sha256", a.sha256],
                ],
            ),
            ("p", f"Legitimacy: {a.legitimacy}"),
            ("p", f"Necessity: {a.necessity}"),
            ("p", f"Impact: {a.impact}"),
            ("ul", list(a.measures)),
        ]
    return doc


def _consenting(code: str, spec: dict, tally: dict[str, int]) -> str:
    if spec["consent"] == "none":
        return "not needed (contract)"
    if code.endswith(":"):
        parts = [f"{k.removeprefix(code)}: {v:,}" for k, v in tally.items() if k.startswith(code)]
        return "; ".join(parts) or "0"
    return f"{tally.get(code, 0):,}"


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(doc: list[Block]) -> str:
    """Render the document as GitHub-flavoured Markdown."""
    out: list[str] = []
    for block in doc:
        kind = block[0]
        if kind == "h":
            out.append("#" * block[1] + " " + block[2])
        elif kind == "p":
            out.append(block[1])
        elif kind == "ul":
            out.append("\n".join(f"- {_md_cell(i)}" for i in block[1]))
        elif kind == "table":
            headers, rows = block[1], block[2]
            lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def to_html(doc: list[Block]) -> str:
    """Render the document as a standalone HTML page (every value escaped)."""
    e = html.escape
    title = next((b[2] for b in doc if b[0] == "h"), "Impact assessment")
    body: list[str] = []
    for block in doc:
        kind = block[0]
        if kind == "h":
            body.append(f"<h{block[1]}>{e(block[2])}</h{block[1]}>")
        elif kind == "p":
            body.append(f"<p>{e(block[1])}</p>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{e(str(i))}</li>" for i in block[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{e(h)}</th>" for h in block[1])
            rows = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in block[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    style = "body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}" + (
        "td,th{border:1px solid #999;padding:.2em .5em;text-align:left;vertical-align:top}"
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
        f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
