"""``alliance-node demo``: three brand nodes, real CDNOW members and purchases, PIPL consent,
witnessed checkpoints, rights requests, and every log and audit trail verified offline."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from compliance.pia_report import document, to_markdown
from ledger import note
from ledger.canonical import canonical_json
from ledger.checkpoint import Checkpoint
from ledger.export import export_log, verify_export
from ledger.witness import AddCheckpoint, WitnessError
from node.core.processes import free_port
from node.core.progress import progress_bar
from node.core.settings import VKEY_FILE
from node.demo import cdnow
from node.demo import consent as demo_consent
from node.demo.alliance import BrandSpec, create_alliance
from node.demo.exchange import ExchangeResult, earn_purchases, exchange_phase
from node.demo.learning import federation_phase
from node.demo.vertical import LABEL_HOLDER, joint_rights_phase, vertical_phase
from node.learning.run import NodesRun
from node.learning.vertical_run import VerticalOutcome
from node.peers.witnessing import LocalWitness, request_cosignatures
from node.runtime import Node
from node.runtime_facts import gather

if TYPE_CHECKING:
    from node.demo.chain import ChainResult

# each brand's share and profile of the CDNOW customers: cdnow.PROFILES (about 68 / 27 / 5 %)
BRANDS: list[tuple[str, str]] = [
    ("airline", "Sky Airline"),
    ("supermarket", "FreshMart"),
    ("coffee", "Bean Coffee"),
]
# what one point is worth (fen) and the fee on points leaving, as the registry states them
POINT_VALUES: dict[str, tuple[Decimal, Decimal]] = {
    "airline": (Decimal("4.5"), Decimal("0.05")),
    "supermarket": (Decimal("1"), Decimal("0.02")),
    "coffee": (Decimal("2.5"), Decimal("0.03")),
}
PURCHASE_LOG = "purchases"
BATCH = 1000


class DemoError(Exception):
    """The demo cannot run in the directory it was given."""


@dataclass
class DemoResult:
    """What the demo proved, for the closing table and for tests."""

    customers: Counter[str] = field(default_factory=Counter)
    shared_customers: int = 0  # members of two brands (the same phone number at both)
    purchases: Counter[str] = field(default_factory=Counter)
    cosignatures: dict[tuple[str, str], int] = field(default_factory=dict)
    verified: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)
    refused_forks: list[str] = field(default_factory=list)
    consents: dict[str, Counter[str]] = field(default_factory=dict)
    audit_bundles: dict[str, tuple[int, int]] = field(default_factory=dict)
    exchange: ExchangeResult | None = None
    federation: NodesRun | None = None
    vertical: VerticalOutcome | None = None
    joint_withdrawal: bool | None = None  # a withdrawal at one brand recorded at the other (None: not run)
    chain: ChainResult | None = None

    @property
    def ok(self) -> bool:
        """Every log verified, every forged fork refused, and the money path consistent."""
        return (
            bool(self.verified)
            and len(self.refused_forks) == 2
            and len(self.audit_bundles) == len(BRANDS)
            and (self.exchange is None or self.exchange.ok)
            and (self.federation is None or all(b.refused is None for b in self.federation.brands))
            and (self.chain is None or self.chain.ok)
            and self.joint_withdrawal is not False
        )


def _node_id(brand: str) -> str:
    return f"{brand}.alliance.example"


def _setup_nodes(base: Path) -> dict[str, Node]:
    if base.exists() and any(base.iterdir()):
        raise DemoError(f"{base} is not empty: give the demo an empty or new directory")
    specs = [BrandSpec(b, display, *POINT_VALUES[b], free_port()) for b, display in BRANDS]
    create_alliance(base, specs, alliance="CDNOW Demo Alliance")
    return {brand: Node.open(base / brand) for brand, _ in BRANDS}


def _split_purchases(result: DemoResult) -> dict[str, list[cdnow.Purchase]]:
    purchases = list(cdnow.purchases())
    brand_of = cdnow.split_customers(purchases)
    by_brand: dict[str, list[cdnow.Purchase]] = {b: [] for b, _ in BRANDS}
    seen: set[tuple[str, str]] = set()
    for p in purchases:
        brand = cdnow.brand_of_purchase(p, brand_of[p.customer_id])  # shared customers buy at two brands
        if (brand, p.customer_id) not in seen:
            seen.add((brand, p.customer_id))
            result.customers[brand] += 1
        by_brand[brand].append(p)
        result.purchases[brand] += 1
    result.shared_customers = sum(result.customers.values()) - len({cid for _, cid in seen})
    return by_brand


def _member_ref(brand: str, customer_id: str) -> str:
    return f"{brand}-{customer_id}"


def _purchase_events(brand: str, purchases: list[cdnow.Purchase], pseudonyms: dict[str, str]) -> list[bytes]:
    """Each purchase under the member's keyed pseudonym: no raw identifier reaches the ledger."""
    return [
        canonical_json(
            {
                "type": "purchase",
                "member": pseudonyms[_member_ref(brand, p.customer_id)],
                "day": p.day.isoformat(),
                "cds": p.cds,
                "amount_fen": p.amount_fen,
            }
        )
        for p in purchases
    ]


def _compliance_phase(
    nodes: dict[str, Node], by_brand: dict[str, list[cdnow.Purchase]], result: DemoResult, console: Console
) -> dict[str, list[bytes]]:
    """Notices, members, consent mix; returns each brand's purchase events under pseudonyms."""
    events: dict[str, list[bytes]] = {}
    table = Table(title="Consent mix (optional purposes are off until granted; the rest declined)")
    table.add_column("brand")
    table.add_column("members", justify="right")
    purposes = ["joint_modeling", "joint_modeling (withdrawn later)", "personalization", "marketing", "points_exchange"]
    for p in purposes:
        table.add_column(p.replace(" (withdrawn later)", " withdrawn"), justify="right")
    with progress_bar(console) as progress:
        refs_of = {b: list(dict.fromkeys(_member_ref(b, p.customer_id) for p in by_brand[b])) for b in nodes}
        task = progress.add_task(
            "onboarding members: notices, registrations, consents", total=sum(len(r) for r in refs_of.values())
        )
        for brand, node in nodes.items():
            refs = refs_of[brand]
            partners = [n.settings.node_id for b, n in nodes.items() if b != brand]
            pseudonyms, counts = demo_consent.onboard(node, refs, partners, lambda n: progress.advance(task, n))
            result.consents[brand] = counts
            exchange = sum(v for k, v in counts.items() if k.startswith("points_exchange:"))
            shares = [f"{counts[p]:,} ({100 * counts[p] / len(refs):.0f}%)" for p in purposes[:4]]
            table.add_row(brand, f"{len(refs):,}", *shares, f"{exchange:,} grants")
            events[brand] = _purchase_events(brand, by_brand[brand], pseudonyms)
    console.print(table)
    return events


def _witnesses_for(brand: str, nodes: dict[str, Node]) -> list[LocalWitness]:
    return [LocalWitness(nodes[o].settings.node_id, nodes[o].witness) for o in nodes if o != brand]


def _try_forks(nodes: dict[str, Node], result: DemoResult, console: Console) -> None:
    """Show that witnesses refuse a log owner that presents two different histories."""
    victim, witness_brand = "airline", "supermarket"
    log = nodes[victim].store.log(PURCHASE_LOG)
    signer = nodes[victim].signer
    head = log.head()
    forged_root = bytes(32)
    attempts = [
        (
            "same size, other root",
            AddCheckpoint(head.size, (), Checkpoint(log.origin, head.size, forged_root).sign(signer)),
        ),
        (
            "larger size, rewritten past",
            AddCheckpoint(head.size, (forged_root,), Checkpoint(log.origin, head.size + 1, forged_root).sign(signer)),
        ),
    ]
    for label, request in attempts:
        try:
            nodes[witness_brand].witness.add_checkpoint(request)
            console.print(f"[red]witness {witness_brand} cosigned a fork ({label})[/red]")
        except WitnessError as exc:
            result.refused_forks.append(label)
            console.print(f"  fork drill ({label}): {witness_brand} refused with {exc.status}: {exc}")


def run_demo(
    base: Path,
    console: Console | None = None,
    rounds: int = 4,
    exchanges: int = 3000,
    federation: bool = True,
    deployment: bool = False,
    chain: bool = False,
) -> DemoResult:
    """Run the whole demo in ``base``; return what it proved."""
    console = console or Console()
    result = DemoResult()
    console.rule("[bold]Loyalty alliance demo")
    nodes = _setup_nodes(base)
    console.print(f"Three brand nodes in {base}: " + ", ".join(n.settings.node_id for n in nodes.values()))
    try:
        by_brand = _split_purchases(result)
        console.print(
            f"CDNOW ({cdnow.dataset_path().name}): "
            f"{sum(result.customers.values()) - result.shared_customers:,} customers, "
            f"{sum(result.purchases.values()):,} purchases, split across the brands; "
            f"{result.shared_customers:,} customers shop at the airline and the supermarket both."
        )
        for node in nodes.values():
            node.store.ensure_log(PURCHASE_LOG, node.settings.origin(PURCHASE_LOG))
            node.audit("config.change", details={"event": "node.start", "logs": ",".join(node.store.log_names())})
        events = _compliance_phase(nodes, by_brand, result, console)
        _append_and_witness(nodes, events, rounds, console)
        _try_forks(nodes, result, console)
        _rights_and_audit(base, nodes, by_brand, result, console)
        if exchanges:
            console.rule("Points: earn, link, exchange, settle")
            result.exchange = exchange_phase(base, nodes, by_brand, _member_ref, console, exchanges)
        elif federation:
            earn_purchases(nodes, by_brand, _member_ref)  # the money path skipped: the journals still need them
        if federation:
            console.rule("Joint churn model: Flower + Opacus across the three nodes")
            result.federation = federation_phase(nodes, console, deployment=base / "flower" if deployment else None)
            console.rule("Cross-brand churn model: PSI on shared members, then vertical learning with DP")
            members = {b: list(dict.fromkeys(p.customer_id for p in by_brand[b])) for b in by_brand}
            result.vertical = vertical_phase(nodes, members, _member_ref, console)
            console.rule("PIPL across the alliance: a joint handler's withdrawal, records of provision")
            result.joint_withdrawal = joint_rights_phase(nodes, members[LABEL_HOLDER], _member_ref, console)
        if chain:
            from node.demo.chain import chain_phase

            console.rule("Anchoring and settlement on an EVM chain")
            positions = result.exchange.positions if result.exchange else {}
            result.chain = chain_phase(base, nodes, positions, console)
        _export_and_verify(base, nodes, result, console)
    finally:
        for node in nodes.values():
            node.dispose()
    _summary(nodes, result, console)
    return result


def _rights_and_audit(
    base: Path,
    nodes: dict[str, Node],
    by_brand: dict[str, list[cdnow.Purchase]],
    result: DemoResult,
    console: Console,
) -> None:
    """One rights request of each kind per brand, a refused provision, and audit bundles verified offline."""
    for brand, node in nodes.items():
        refs = list(dict.fromkeys(_member_ref(brand, p.customer_id) for p in by_brand[brand]))
        outcome = demo_consent.rights_drill(node, refs, stranger_brand="bank.alliance.example")
        partner = next(n.settings.node_id for b, n in nodes.items() if b != brand)
        outcome |= demo_consent.assessment_drill(node, partner, refs)
        for kind, text in outcome.items():
            console.print(f"  {brand} {kind}: {text}")
        report = base / brand / "pia-report.md"
        report.write_text(to_markdown(document(gather(node))))
        console.print(f"  {brand} impact assessment report: {report}")
        count, size = demo_consent.verify_audit_bundle(node)
        result.audit_bundles[brand] = (count, size)
        console.print(
            f"  {brand} audit bundle: its {count:,} consent.* events, selected from the {size:,}-entry audit log,"
            " all verified offline with their inclusion proofs"
        )


def _append_and_witness(nodes: dict[str, Node], events: dict[str, list[bytes]], rounds: int, console: Console) -> None:
    total = sum(len(v) for v in events.values())
    with progress_bar(console) as progress:
        task = progress.add_task("appending purchases, checkpointing, witnessing", total=total)
        for r in range(rounds):
            for brand, node in nodes.items():
                evs = events[brand]
                chunk = evs[len(evs) * r // rounds : len(evs) * (r + 1) // rounds]
                log = node.store.log(PURCHASE_LOG)
                for i in range(0, len(chunk), BATCH):
                    log.append(chunk[i : i + BATCH])
                    progress.advance(task, len(chunk[i : i + BATCH]))
                for name in node.store.log_names():
                    outcomes = request_cosignatures(node.store.log(name), node.signer, _witnesses_for(brand, nodes))
                    for o in outcomes:
                        if not o.ok:
                            console.print(f"[red]{o.witness} did not cosign {brand}/{name}: {o.detail}[/red]")


def _export_and_verify(base: Path, nodes: dict[str, Node], result: DemoResult, console: Console) -> None:
    out_dir = base / "exports"
    out_dir.mkdir(exist_ok=True)
    jobs = [(b, name) for b, n in nodes.items() for name in n.store.log_names()]
    total = sum(nodes[b].store.log(name).size for b, name in jobs) * 2
    with progress_bar(console) as progress:
        task = progress.add_task("exporting and verifying every log offline", total=total)
        for brand, name in jobs:
            node = nodes[brand]
            path = out_dir / f"{brand}-{name}.jsonl"
            with open(path, "wb") as f:
                export_log(node.store.log(name), node.signer, f, progress=lambda k: progress.advance(task, k))
            vkey = note.Verifier.from_vkey((base / brand / VKEY_FILE).read_text())
            with open(path, "rb") as f:
                v = verify_export(f, vkey, progress=lambda k: progress.advance(task, k))
            result.verified[(brand, name)] = (v.size, v.root_hash.hex())
            signed = node.store.log(name).latest_checkpoint() or ""
            result.cosignatures[(brand, name)] = len(note.parse(signed).signatures) - 1 if signed else 0


def _summary(nodes: dict[str, Node], result: DemoResult, console: Console) -> None:
    table = Table(title="Alliance ledgers (exported, then verified offline with each node's vkey)")
    for col in ("brand", "members", "log", "entries", "root", "cosigs", "export"):
        table.add_column(col, justify="right" if col in ("members", "entries", "cosigs") else "left")
    for (brand, name), (size, root) in sorted(result.verified.items()):
        table.add_row(
            brand,
            f"{result.customers[brand]:,}",
            name,
            f"{size:,}",
            root[:12],
            str(result.cosignatures.get((brand, name), 0)),
            "[green]OK[/green]",
        )
    console.print(table)
    verdict = "[green]all logs verified offline[/green]" if result.ok else "[red]verification failed[/red]"
    console.print(f"{verdict}; forged forks refused: {len(result.refused_forks)} of 2")
