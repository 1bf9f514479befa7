"""``federate vertical``: a cross-brand run from a label-holding node over its partners' nodes.

For each partner, private set intersection over signed peer calls (:mod:`node.learning.alignment`);
then the label holder's run (:mod:`federation.vertical_server`, :func:`lead`) over each partner's
ClientApp (:mod:`federation.vertical_client`, :func:`partner_site`), on the in-process Grid or on
Flower's Deployment Engine (:mod:`node.vertical_apps`). Each brand builds the rows of its own side
of the aligned members from its own wallet journals, decides its own privacy (epsilon per run,
delta) and charges what it releases to its own ``joint_modeling`` book, refusing past its budget.
Every node records the run (:mod:`node.learning.vertical_store`); the label holder keeps each
aligned member's score. Alignments are dropped once a side is done with them.

Runs are named ``<label holder>/<name>`` at every node, so two label holders' runs never share a
privacy record at a partner.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from flwr.serverapp import Grid
from rich.console import Console
from rich.table import Table as RichTable

from compliance.pia_service import PiaService
from compliance.service import ConsentService
from federation.features import Scaler, churned, features
from federation.inprocess import InProcessGrid
from federation.privacy import epsilon_of
from federation.site import Audit, RoundRefused
from federation.vertical_client import PartnerSite, make_partner_app
from federation.vertical_server import LabelSite, VerticalRound, VerticalSettings, run_vertical
from ledger.storage import LedgerStore
from node.core.audit import NodeAudit
from node.core.settings import NodeSettings
from node.learning.alignment import Alignment
from node.learning.deploy import LocalFederation
from node.learning.rows import ChurnWindow, history_from_journal
from node.learning.site import feature_gate
from node.learning.store import PURPOSE, NodePrivacyBook
from node.learning.vertical_store import VerticalRunRecord, VerticalStore
from node.wallet.store import WalletStore
from node.wallet.tiers import default_rules

log = logging.getLogger("alliance.node")
#: The Flower apps of a vertical run on the Deployment Engine.
VERTICAL_APPS = ("node.vertical_apps:server_app", "node.vertical_apps:client_app")


class Brand(Protocol):
    """What a vertical run needs of a node (``node.runtime.Node`` has all of it)."""

    settings: NodeSettings
    consent: ConsentService
    wallets: WalletStore
    audit: NodeAudit
    alignment: Alignment
    vertical: VerticalStore
    store: LedgerStore  # its engine holds the node's tables
    pia: PiaService


@dataclass
class VerticalOutcome:
    """A finished run as the label holder saw it."""

    run: str
    label_holder: str
    aligned: dict[str, int]  # partner -> members aligned with it
    members: dict[str, int]  # training, validation, held out (members aligned with every partner)
    auc_alone: float
    auc_vertical: float
    contributions: dict[str, float]
    used: list[str]  # partners whose scores the served model uses
    epsilon: dict[str, float | None]  # brand -> epsilon the run cost it (None: not DP)
    refused: dict[str, str]  # partner -> why it refused a message
    scored: int  # aligned members the label holder keeps a score for
    seconds_per_round: float

    def to_json(self) -> dict[str, Any]:
        """What ``federate vertical --json`` prints."""
        return {
            "mode": "vertical",
            **{k: v for k, v in asdict(self).items() if k != "aligned"},
            "intersection": self.aligned,
            "auc_alone": round(self.auc_alone, 4),
            "auc_vertical": round(self.auc_vertical, 4),
            "contributions": {k: round(v, 4) for k, v in self.contributions.items()},
            "partners_used": self.used,
            "epsilon": {k: None if v is None else round(v, 4) for k, v in self.epsilon.items()},
            "seconds_per_round": round(self.seconds_per_round, 3),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VerticalOutcome:
        """Back from :meth:`to_json` (the Deployment Engine's ServerApp prints it)."""
        return cls(**{k: data[k] for k in ("run", "label_holder", "members", "auc_alone", "auc_vertical",
                                           "contributions", "epsilon", "refused", "scored", "seconds_per_round")},
                   aligned=data["intersection"], used=data["partners_used"])


def vertical_nodes(
    holder: Brand,
    partners: Sequence[Brand],
    name: str,
    window: ChurnWindow,
    settings: VerticalSettings,
    minimum: int | None = None,
    progress: Callable[[str], None] | None = None,
    deployment: Path | None = None,
) -> VerticalOutcome:
    """Align ``holder`` with every partner, train, record at every node (their outbound clients must
    reach one another: over the network, or with ``Outbound.connect_in_process``). With ``deployment``
    (a work directory) the training runs on Flower's Deployment Engine with TLS and SuperNode auth."""
    say = progress or (lambda _m: None)
    me = holder.settings.node_id
    run = f"{me}/{name}"
    names = [p.settings.node_id for p in partners]
    if not partners or me in names or len(set(names)) != len(names):
        raise ValueError("a vertical run needs the label holder and at least one other, distinct brand")
    feature_gate(holder.pia)()  # nothing is aligned while joint modeling is switched off here
    settings = replace(settings, run=run)
    try:
        for partner in partners:
            say(f"private set intersection with {partner.settings.node_id}")
            holder.alignment.align(partner.settings.node_id, run, minimum)
        say("vertical training" + (" on the Deployment Engine" if deployment else ""))
        if deployment is not None:
            return _on_deployment(holder, partners, settings, window, deployment)
        sites = {p.settings.node_id: partner_site(p, run, window) for p in partners}
        grid = InProcessGrid(make_partner_app(lambda ctx: sites[str(ctx.node_config["brand"])]),
                             [{"brand": n} for n in names])
        flower = logging.getLogger("flwr")
        level = flower.level
        flower.setLevel(logging.WARNING)
        try:
            return lead(holder, grid, settings, window)
        finally:
            flower.setLevel(level)
    finally:
        for node in (holder, *partners):
            node.alignment.store.forget(run)


def lead(
    holder: Brand,
    grid: Grid,
    settings: VerticalSettings,
    window: ChurnWindow,
    on_round: Callable[[VerticalRound], None] | None = None,
) -> VerticalOutcome:
    """The label holder's side of an aligned run: its rows, the run over ``grid``, its records."""
    me, run = holder.settings.node_id, settings.run
    peers = holder.alignment.store.by_peer(run)
    if not peers:
        raise ValueError(f"no alignment for {run}: private set intersection comes first")
    common = set.intersection(*(set(ids.values()) for ids in peers.values()))
    common &= set.intersection(*(set(holder.consent.cross_brand_cohort(p)) for p in peers))  # withdrawn since PSI
    rows = _rows(holder, sorted(common), window, labelled=True)
    x, y = {m: r for m, (r, _) in rows.items()}, {m: lab for m, (_, lab) in rows.items()}
    aliases = {p: {member: align for align, member in ids.items()} for p, ids in peers.items()}
    label = LabelSite(me, x, y, NodePrivacyBook(holder.store.engine, PURPOSE), aliases, audit=_audit(holder, me))
    started, times = time.monotonic(), []

    def timed(r: VerticalRound) -> None:
        times.append(time.monotonic())
        if on_round is not None:
            on_round(r)

    report = run_vertical(grid, settings, label, timed)
    if settings.dp and not any(r.epsilon.get(me) is not None for r in report.rounds):
        raise RoundRefused("the label holder released nothing: the run is void")
    epsilon: dict[str, float | None] = {b: 0.0 if settings.dp else None for b in (me, *peers)}
    if settings.dp:
        epsilon |= {b: e for r in report.rounds for b, e in r.epsilon.items()}
    at = datetime.now(UTC)
    holder.vertical.record_run(
        VerticalRunRecord(run, "label_holder", me, sorted(peers), len(x), epsilon[me], report.auc_alone,
                          report.auc_vertical, report.contributions, report.used, at),
        report.scores,
    )
    holder.alignment.store.forget(run)
    log.info("vertical run %s: %d members, epsilon %s", run, len(x), epsilon)
    return VerticalOutcome(
        run, me, {p: len(ids) for p, ids in peers.items()}, report.members, report.auc_alone, report.auc_vertical,
        report.contributions, report.used, epsilon, {p: why for r in report.rounds for p, why in r.refused.items()},
        len(report.scores), (times[-1] - started) / len(times) if times else 0.0,
    )


def partner_site(partner: Brand, run: str, window: ChurnWindow) -> PartnerSite:
    """A partner as its ClientApp sees it: rows of its side of the run's aligned members (read when first
    asked), its own privacy terms (its settings, never the label holder's), book, gate and audit; it
    records the run once its last scores are released."""
    cache: dict[str, dict[str, list[float]]] = {}

    def rows_of(asked: str) -> dict[str, list[float]]:
        if asked != run:
            return {}
        if run not in cache:
            ids = partner.alignment.store.load(run)  # alignment id -> the partner's pseudonym
            still = set(partner.consent.cross_brand_cohort(run.split("/", 1)[0]))  # a withdrawal since PSI counts
            ids = {a: m for a, m in ids.items() if m in still}
            rows = _rows(partner, sorted(set(ids.values())), window, labelled=False)
            cache[run] = {a: rows[m][0] for a, m in ids.items()}
        return cache[run]

    terms = partner.settings
    return PartnerSite(partner.settings.node_id, rows_of, NodePrivacyBook(partner.store.engine, PURPOSE),
                       epsilon=terms.cross_brand_epsilon, delta=terms.cross_brand_delta,
                       max_rounds=terms.cross_brand_max_rounds,
                       audit=_audit(partner, partner.settings.node_id, terms.cross_brand_delta),
                       gate=feature_gate(partner.pia))


def _on_deployment(
    holder: Brand, partners: Sequence[Brand], settings: VerticalSettings, window: ChurnWindow, work: Path
) -> VerticalOutcome:
    """The training on a SuperLink with one SuperNode per partner; the ServerApp leads from the holder's node."""
    config: dict[str, Any] = {
        **{k.replace("_", "-"): v for k, v in asdict(settings).items()},
        "data-dir": str(Path(holder.settings.data_dir).resolve()),
        "cutoff": window.cutoff.isoformat(),
        "horizon-end": window.horizon_end.isoformat(),
    }
    with LocalFederation(work, [p.settings.data_dir for p in partners], secure=True, apps=VERTICAL_APPS) as fed:
        fed.start()
        for event in fed.run(config):
            if "report" in event:
                return VerticalOutcome.from_json(event["report"])
    raise RuntimeError("the Deployment Engine run ended without a report")


def _rows(node: Brand, members: list[str], window: ChurnWindow, labelled: bool) -> dict[str, tuple[list[float], int]]:
    """Each member's scaled feature row (and label) from the node's own journals; with ``labelled`` only
    members who had bought by the cutoff (the others cannot churn)."""
    journals = node.wallets.movements(members)
    rules, scaler = default_rules(), Scaler.reference()
    out = {}
    for m in members:
        h = history_from_journal(m, journals.get(m, []), window.cutoff, node.settings.points_per_yuan, rules)
        if labelled and not any(p.day <= window.cutoff for p in h.purchases):
            continue
        out[m] = (scaler.transform([features(h, window.cutoff)])[0], churned(h, window.cutoff, window.horizon_end))
    return out


def _audit(node: Brand, brand: str, delta: float = 1e-5) -> Audit:
    """The vertical apps' events as the node's audit actions; a partner records the run after its last release."""

    def hook(event: str, details: dict[str, object]) -> None:
        d = dict(details)
        common = {"purpose_code": PURPOSE, "legal_basis": "consent"}
        run = str(d.get("run"))
        if event in ("vertical.labels", "vertical.train", "vertical.embed"):
            node.audit(
                "dp.budget_spend",
                **common,
                subject_count=int(d.get("members", 0)),  # type: ignore[call-overload]
                details={"run": run, "round": int(d.get("round", 1)), "release": event,  # type: ignore[call-overload]
                         "epsilon": d.get("epsilon")},
            )
        elif event == "vertical.gradients":
            _provided(node, str(d["partner"]), [str(m) for m in d["subjects"]], str(d["digest"]))  # type: ignore[attr-defined]
        elif event == "vertical.refused":
            node.audit("fl.round.contribute", **common, outcome="denied", reason_code="refused",
                       details={"reason": str(d.get("reason"))[:200], "brand": brand})
        if event == "vertical.embed":
            aligned = node.alignment.store.load(run)
            members = [aligned[i] for i in d.get("ids", ()) if i in aligned]  # type: ignore[attr-defined]
            _provided(node, run.split("/", 1)[0], members, str(d.get("digest")))
        if event == "vertical.embed" and d.get("last"):
            state = NodePrivacyBook(node.store.engine, PURPOSE).run(run)
            spent = epsilon_of(list(state.history), delta) if state and state.history else None
            members = len(node.alignment.store.load(run))
            node.vertical.record_run(VerticalRunRecord(run, "partner", run.split("/", 1)[0], [brand], members, spent,
                                                       None, None, {}, [], datetime.now(UTC)))
            node.alignment.store.forget(run)

    return hook


def _provided(node: Brand, recipient: str, members: list[str], digest: str) -> None:
    """The record of provision of a Flower message of the run (scores or gradients about ``members``)."""
    node.outbound.record_provision(
        recipient, PURPOSE, members, ["derived.scores"], carried=("flower_message", digest)
    )


def print_vertical(data: dict[str, Any], console: Console) -> None:
    """The run as a person reads it: shared members, AUC alone and together, contributions, epsilon."""
    shared = ", ".join(f"{p} {n:,}" for p, n in data["intersection"].items())
    console.print(f"vertical run {data['run']}: shared members: {shared}", highlight=False)
    table = RichTable(title=f"{data['label_holder']}: held-out churn AUC", title_justify="left")
    for col in ("model", "AUC", "epsilon"):
        table.add_column(col, justify="left" if col == "model" else "right")
    eps = data["epsilon"]
    table.add_row("alone (its own features)", f"{data['auc_alone']:.3f}", "")
    table.add_row("with partners' features", f"{data['auc_vertical']:.3f}", _eps(eps.get(data["label_holder"])))
    for partner, gain in data["contributions"].items():
        used = "" if partner in data["partners_used"] else " (not used: no gain on validation)"
        table.add_row(f"  contribution of {partner}{used}", f"{gain:+.3f}", _eps(eps.get(partner)))
    console.print(table)
    for partner, why in data.get("refused", {}).items():
        console.print(f"  {partner} refused: {why}", highlight=False)


def _eps(value: float | None) -> str:
    return "no DP" if value is None else f"{value:.2f}"
