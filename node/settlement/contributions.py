"""What each partner's features were worth to a label holder's cross-brand models in a window.

A vertical run measures each partner's contribution as the label holder's held-out AUC lost
without that partner's scores (:mod:`federation.vertical_server`). ``settle`` writes the runs the
node led in the window to a file signed by its key, beside the pair statements;
``settlement report`` checks the signature against the registry and lists the contributions next
to the payments. No money moves for them: the alliance decides what, if anything, they are worth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger import note
from ledger.canonical import canonical_json
from node.settlement.statements import SettlementError, Window

FORMAT = "alliance-contributions/1"
DOMAIN = b"alliance-contributions/1\n"


@dataclass(frozen=True)
class Contribution:
    """One partner's contribution to one run of a label holder."""

    run: str
    label_holder: str
    partner: str
    auc_gain: float | None  # held-out AUC lost without the partner's scores (None: not measurable)
    used: bool  # whether the served model uses the partner's scores
    members: int
    at: datetime


def contributions_file(label_holder: str, window: Window, runs: list[dict[str, Any]], signer: note.Signer) -> dict:
    """The signed file of the runs ``label_holder`` led in ``window`` (``runs``: stored run records as JSON)."""
    if signer.name != label_holder:
        raise ValueError(f"{signer.name} cannot sign {label_holder}'s contributions")
    body = {
        "format": FORMAT,
        "label_holder": label_holder,
        "window_start": window.start.isoformat(),
        "window_end": window.end.isoformat(),
        "runs": [
            {
                "run": r["run"],
                "members": r["members"],
                "at": r["at"],
                # an AUC on held-out rows of one class is not a number: recorded as not measurable
                "contributions": {p: g if math.isfinite(g) else None for p, g in r["contributions"].items()},
                "used": r["used"],
            }
            for r in runs
        ],
    }
    return {**body, "signature": note.b64encode(signer.sign_raw(DOMAIN + canonical_json(body)))}


def is_contributions(data: object) -> bool:
    """Whether a parsed settlement-directory file is a contributions file (not a pair's statements)."""
    return isinstance(data, dict) and data.get("format") == FORMAT


def read_contributions(data: dict[str, Any], key: note.Verifier) -> tuple[Window, list[Contribution]]:
    """The window and contributions of a file, or :class:`SettlementError` if its signature is not the
    label holder's (``key``: the label holder's key from the registry)."""
    body = {k: v for k, v in data.items() if k != "signature"}
    try:
        ok = key.name == body["label_holder"] and key.verify(
            DOMAIN + canonical_json(body), note.b64decode(str(data["signature"]), "sig")
        )
        window = Window(datetime.fromisoformat(body["window_start"]), datetime.fromisoformat(body["window_end"]))
        out = [
            Contribution(
                str(r["run"]),
                str(body["label_holder"]),
                str(partner),
                None if gain is None else float(gain),
                partner in r["used"],
                int(r["members"]),
                datetime.fromisoformat(r["at"]),
            )
            for r in body["runs"]
            for partner, gain in sorted(r["contributions"].items())
        ]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SettlementError(f"not a contributions file: {exc}") from exc
    if not ok:
        raise SettlementError(f"{body.get('label_holder')}'s contributions file signature does not verify")
    return window, out
