"""The demo's money path: three nodes as separate server processes, purchases earning points,
members linking accounts across brands over HTTP, a few thousand exchanges, a settlement window
netted across the alliance, each brand's liability, and reconciliation of every pair's logs."""

from __future__ import annotations

import itertools
import json
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from compliance.consent import ConsentAction
from compliance.service import ConsentChange
from node.core.processes import ServerProcess
from node.core.progress import progress_bar
from node.demo import cdnow
from node.demo.client import AppClient
from node.demo.consent import CONSENT_MIX, _roll
from node.runtime import Node
from node.settlement.report import net_from_files
from node.settlement.statements import Window
from node.wallet.bulk import import_earns
from node.wallet.loyalty import points_for
from node.wallet.tiers import add_months

LAST_CDNOW_DAY = date(1998, 6, 30)
LINKS_PER_PAIR = 60
THREADS = 8


@dataclass
class ExchangeResult:
    """What the money path did, for the summary and the tests."""

    earned: dict[str, int] = field(default_factory=dict)
    links: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    positions: dict[str, int] = field(default_factory=dict)
    payments: list[tuple[str, str, int]] = field(default_factory=list)
    disputes: list[str] = field(default_factory=list)
    reconciled: dict[tuple[str, str], bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Exchanges happened, settlement agreed and summed to zero, every pair's logs agree."""
        return (
            self.outcomes["confirmed"] > 0
            and not self.disputes
            and sum(self.positions.values()) == 0
            and bool(self.reconciled)
            and all(self.reconciled.values())
        )


def earn_purchases(nodes: dict[str, Node], by_brand: dict[str, list[cdnow.Purchase]], ref_of) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Every CDNOW purchase earns points at its brand; dates shift so the last purchase was yesterday."""
    shift = (datetime.now(UTC).date() - timedelta(days=1)) - LAST_CDNOW_DAY
    earned = {}
    for brand, node in nodes.items():
        pseudonyms = node.keyring.pseudonyms(list(dict.fromkeys(ref_of(brand, p.customer_id) for p in by_brand[brand])))
        rate, months = node.settings.points_per_yuan, node.settings.points_expiry_months
        rows = []
        for i, p in enumerate(by_brand[brand]):
            points = points_for(p.amount_fen, rate) if p.amount_fen > 0 else 0
            if points < 1:
                continue
            day = p.day + shift
            rows.append(
                (
                    pseudonyms[ref_of(brand, p.customer_id)],
                    points,
                    "purchase",
                    day,
                    add_months(day, months),
                    f"purchase:{p.customer_id}:{i}",
                )
            )
        import_earns(node.wallets, rows)
        earned[brand] = sum(r[1] for r in rows)
    return earned


Pick = tuple[str, str, str, str]  # brand, partner, member ref at brand, member ref at partner


def pick_members(
    nodes: dict[str, Node],
    by_brand: dict[str, list[cdnow.Purchase]],
    ref_of,  # type: ignore[no-untyped-def]
) -> list[Pick]:
    """Per ordered pair of brands, members who consented to exchange with the partner and earned enough;
    each opens an account at the partner and consents there to exchange back."""
    picks: list[Pick] = []
    for brand, node in nodes.items():
        totals: Counter[str] = Counter()
        for p in by_brand[brand]:
            totals[p.customer_id] += points_for(p.amount_fen, node.settings.points_per_yuan) if p.amount_fen > 0 else 0
        drilled = set(list(totals)[:3])  # the rights drill corrects and erases the first members
        for partner, other in nodes.items():
            if partner == brand:
                continue
            purpose = f"points_exchange:{other.settings.node_id}"
            chosen = [
                c
                for c in totals
                if c not in drilled
                and totals[c] >= 1000
                and _roll(ref_of(brand, c), purpose) < CONSENT_MIX["points_exchange:"]
            ][:LINKS_PER_PAIR]
            back = f"points_exchange:{node.settings.node_id}"
            refs = [f"{ref_of(partner, c)}-from-{brand}" for c in chosen]
            other.consent.register_members([(r, None, None) for r in refs])
            other.consent.change_many(
                [ConsentChange(r, (back,), ConsentAction.GRANT, collection_method="demo-app") for r in refs]
            )
            picks += [(brand, partner, ref_of(brand, c), r) for c, r in zip(chosen, refs, strict=True)]
    return picks


def start_servers(base: Path, nodes: dict[str, Node]) -> dict[str, ServerProcess]:
    """One `alliance-node serve` process per brand, on the port its registry entry names."""
    servers = {
        brand: ServerProcess(base / brand, node.settings.port, base / f"{brand}-server.log")
        for brand, node in nodes.items()
    }
    for s in servers.values():
        s.start(wait=False)
    for s in servers.values():
        s.wait_ready()
    return servers


def link_over_http(nodes: dict[str, Node], apps: dict[str, AppClient], picks: list[Pick]) -> int:
    """Each picked member asks brand A for a link code and types it at brand B (a signed B -> A call)."""
    linked = 0
    for brand, partner, ref, partner_ref in picks:
        token_a = nodes[brand].member_tokens.issue(ref, 3600)
        token_b = nodes[partner].member_tokens.issue(partner_ref, 3600)
        status, body = apps[brand].post("/v1/me/link-codes", token_a, {"brand": nodes[partner].settings.node_id})
        if status != 201:
            raise RuntimeError(f"link code at {brand} refused: {body}")
        status, body = apps[partner].post(
            "/v1/me/links", token_b, {"brand": nodes[brand].settings.node_id, "code": body["code"]}
        )
        if status != 201:
            raise RuntimeError(f"linking at {partner} refused: {body}")
        linked += 1
    return linked


def run_exchanges(
    nodes: dict[str, Node], ports: dict[str, int], picks: list[Pick], count: int, console: Console
) -> Counter[str]:
    """``count`` exchanges from picked members to their partner brands, from several app threads at once."""
    rng = random.Random(1998)
    jobs = [(picks[i % len(picks)], rng.randint(10, 60)) for i in range(count)]
    tokens = {(b, r): nodes[b].member_tokens.issue(r, 3600) for b, _, r, _ in picks}
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    ticket = itertools.count()
    with progress_bar(console) as progress:
        task = progress.add_task(f"{count:,} exchanges between the brands' servers", total=count)

        def worker() -> None:
            apps = {b: AppClient(p) for b, p in ports.items()}
            try:
                while (i := next(ticket)) < count:
                    (brand, partner, ref, _), points = jobs[i]
                    status, body = apps[brand].post(
                        "/v1/me/exchanges",
                        tokens[(brand, ref)],
                        {"to": nodes[partner].settings.node_id, "points": points},
                    )
                    label = body.get("state") if status == 201 else f"refused: {body.get('reason_code')}"
                    with lock:
                        outcomes[label] += 1
                    progress.advance(task)
            finally:
                for a in apps.values():
                    a.close()

        threads = [threading.Thread(target=worker) for _ in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return outcomes


def settle_window(base: Path, nodes: dict[str, Node], window: Window, result: ExchangeResult) -> None:
    """Every node swaps signed statements with every other; the agreed files are netted."""
    out = base / "settlement"
    out.mkdir(exist_ok=True)
    files = []
    for brand, node in nodes.items():
        for other, peer in nodes.items():
            if other <= brand:
                continue
            pair = node.settlement.swap_statements(peer.settings.node_id, window)
            path = out / f"{brand}__{other}.json"
            path.write_text(json.dumps(pair.to_json(), indent=2, sort_keys=True) + "\n")
            files.append(path)
    settlement, disputes = net_from_files(files, next(iter(nodes.values())).registry)
    result.positions = settlement.positions
    result.payments = [(p.payer, p.payee, p.amount) for p in settlement.payments]
    result.disputes = disputes


def exchange_phase(
    base: Path,
    nodes: dict[str, Node],
    by_brand: dict[str, list[cdnow.Purchase]],
    ref_of,  # type: ignore[no-untyped-def]
    console: Console,
    exchanges: int = 3000,
) -> ExchangeResult:
    """Run the money path end to end and print its tables."""
    result = ExchangeResult()
    result.earned = earn_purchases(nodes, by_brand, ref_of)
    console.print(
        "Purchases earned points (1 per yuan, 24-month lots; CDNOW dates shifted to end yesterday): "
        + ", ".join(f"{b} {n:,}" for b, n in result.earned.items())
    )
    picks = pick_members(nodes, by_brand, ref_of)
    start = datetime.now(UTC) - timedelta(seconds=1)
    servers = start_servers(base, nodes)
    console.print("Servers: " + ", ".join(f"{b} {s.base_url} (pid {s.proc.pid})" for b, s in servers.items()))  # type: ignore[union-attr]
    apps = {b: AppClient(s.port) for b, s in servers.items()}
    try:
        result.links = link_over_http(nodes, apps, picks)
        console.print(f"{result.links} members linked their accounts across brands with one-time codes over HTTP")
        result.outcomes = run_exchanges(nodes, {b: s.port for b, s in servers.items()}, picks, exchanges, console)
        settle_window(base, nodes, Window(start, datetime.now(UTC) + timedelta(minutes=5)), result)
        for a, b in itertools.combinations(nodes, 2):
            result.reconciled[(a, b)] = nodes[a].settlement.reconcile_with(nodes[b].settings.node_id).agreed
    finally:
        for a in apps.values():
            a.close()
        for s in servers.values():
            s.stop()
    _print(nodes, result, console)
    return result


def _print(nodes: dict[str, Node], result: ExchangeResult, console: Console) -> None:
    console.print("Exchanges: " + ", ".join(f"{k} {v:,}" for k, v in result.outcomes.most_common()))
    table = Table(title="Settlement window: net positions (receivable +, payable -) — they sum to zero")
    table.add_column("brand")
    table.add_column("net position (CNY)", justify="right")
    for brand, fen in sorted(result.positions.items()):
        table.add_row(brand, f"{fen / 100:,.2f}")  # in CNY, as the payments below
    table.add_row("[bold]sum[/bold]", f"{sum(result.positions.values()) / 100:,.2f}")
    console.print(table)
    payments = Table(title="Fewest payments that settle the window")
    for col in ("payer", "payee", "amount (CNY)"):
        payments.add_column(col, justify="right" if col.startswith("amount") else "left")
    for payer, payee, fen in result.payments:
        payments.add_row(payer, payee, f"{fen / 100:,.2f}")
    console.print(payments)
    liab = Table(title="Points liability and breakage, valued at each brand's registry point value")
    for col in ("brand", "outstanding points", "liability (CNY)", "expired points", "breakage (CNY)"):
        liab.add_column(col, justify="left" if col == "brand" else "right")
    today = datetime.now(UTC).date()
    for brand, node in nodes.items():
        r = node.settlement.liability(today)
        liab.add_row(
            brand,
            f"{r.outstanding_points:,}",
            f"{r.liability_fen / 100:,.2f}",
            f"{r.expired_points:,}",
            f"{r.breakage_fen / 100:,.2f}",
        )
    console.print(liab)
    for (a, b), agreed in result.reconciled.items():
        verdict = "[green]agree[/green]" if agreed else "[red]MISMATCH[/red]"
        console.print(f"  exchange logs of {a} and {b}, checked through signed checkpoints: {verdict}")
    if result.disputes:
        console.print(f"[red]settlement disputes: {', '.join(result.disputes)}[/red]")
