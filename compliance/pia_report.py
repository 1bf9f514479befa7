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
from compliance.pia_report_text import LANGUAGES, words
from compliance.purposes import catalogue

__all__ = ["LANGUAGES", "PIPO_THRESHOLD", "ReportFacts", "document", "to_html", "to_markdown"]


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


def document(f: ReportFacts, language: str = "zh-CN") -> list[Block]:
    """The report as a list of blocks, in reading order, in ``language`` (zh-CN or en)."""
    w = words(language)
    cat = catalogue()
    now = f.generated_at
    notice = (
        w["notice_version"].format(version=f.notice_version, sha256=f.notice_sha256)
        if f.notice_version
        else w["notice_none"]
    )
    doc: list[Block] = [
        ("h", 1, w["title"].format(name=f.display_name or f.node_id)),
        ("p", w["generated"].format(at=now, node=f.node_id)),
        ("h", 2, w["environment"]),
        (
            "table",
            [w["item"], w["value"]],
            [
                [w["node"], f.node_id],
                [w["region"], f.region],
                [w["allowed"], ", ".join(f.allowed_regions)],
                [w["notice"], notice],
                [w["pipo"], f.pipo_contact or w["pipo_none"]],
                [w["members"], f"{f.members:,}"],
            ],
        ),
        ("h", 3, w["recipients"]),
        (
            "table",
            w["peer_headers"].split("|"),
            [[p.node_id, p.region, p.url or "-", w["yes"] if p.region != f.region else w["no"]] for p in f.peers],
        )
        if f.peers
        else ("p", w["no_peers"]),
        ("h", 2, w["data_map"]),
        ("p", w["data_map_intro"]),
        (
            "table",
            w["data_map_headers"].split("|"),
            [
                [
                    code,
                    spec["legal_basis"],
                    spec["consent"],
                    ", ".join(
                        c + (w["sensitive"] if cat.categories[c].sensitive else "") for c in spec["pi_categories"]
                    )
                    or w["named_sensitive"],
                    _consenting(code, spec, f.consents, w),
                ]
                for code, spec in cat.families.items()
            ],
        ),
        ("h", 2, w["cross_border"]),
        (
            "p",
            w["cross_border_counts"].format(
                year=f.xborder_year,
                general=f.xborder_general,
                sensitive=f.xborder_sensitive,
                required=w[f"mechanism.{f.xborder_required.value}"],
            ),
        ),
        (
            "table",
            w["mechanism_headers"].split("|"),
            [[m.country, m.mechanism, m.reference, m.valid_until] for m in f.mechanisms],
        )
        if f.mechanisms
        else ("p", w["no_mechanism"]),
        ("h", 2, w["duties"]),
        (
            "ul",
            [
                w["pipo_alert" if f.members >= PIPO_THRESHOLD else "pipo_ok"].format(
                    members=f.members, threshold=PIPO_THRESHOLD
                ),
                w["rights"].format(open=f.open_requests, overdue=f.overdue_requests),
            ],
        ),
        ("h", 2, w["switches"]),
        (
            "table",
            w["switch_headers"].split("|"),
            [
                [feat.value, w["on"] if on else w["off"], pia or "-", why.replace("_", " ")]
                for feat, (on, pia, why) in f.switches.items()
            ],
        ),
        ("h", 2, w["assessments"]),
    ]
    if not f.assessments:
        doc.append(("p", w["no_assessment"]))
    for rec in f.assessments:
        a = rec.assessment
        doc += [
            ("h", 3, f"{rec.pia_id}: {a.title} ({rec.status(now).value})"),
            (
                "table",
                [w["item"], w["value"]],
                [
                    [w["features"], ", ".join(x.value for x in a.features)],
                    [w["purposes"], ", ".join(a.purposes)],
                    [w["author"], f"{rec.author}, {rec.submitted_at:%Y-%m-%d}"],
                    [w["approved"], f"{rec.approver}, {rec.approved_at:%Y-%m-%d}" if rec.approved_at else w["not_yet"]],
                    [w["expires"], f"{rec.expires_at:%Y-%m-%d}" if rec.expires_at else "-"],
                    [w["kept_until"], f"{rec.retain_until:%Y-%m-%d}"],
                    [w["risk"], f"{a.likelihood.value} / {a.risk_level.value}"],
                    ["sha256", a.sha256],
                ],
            ),
            ("p", w["legitimacy"].format(text=a.legitimacy)),
            ("p", w["necessity"].format(text=a.necessity)),
            ("p", w["impact"].format(text=a.impact)),
            ("ul", list(a.measures)),
        ]
    return doc


def _consenting(code: str, spec: dict, tally: dict[str, int], w: dict[str, str]) -> str:
    if spec["consent"] == "none":
        return w["no_consent_needed"]
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


def to_html(doc: list[Block], language: str = "zh-CN") -> str:
    """Render the document as a standalone HTML page in ``language`` (every value escaped)."""
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
        f'<!DOCTYPE html>\n<html lang="{e(language)}"><head><meta charset="utf-8"><title>{e(title)}</title>'
        f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
