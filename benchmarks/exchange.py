"""Benchmark of the money path: cross-brand exchanges and purchase earnings between two live nodes.

Two brands' nodes (an airline and a supermarket) run as separate `alliance-node serve` processes
on 127.0.0.1, each on its own SQLite file (WAL, synchronous=FULL), exactly as in production. Each
member is registered at both, has consented to exchange with the other brand, is linked, and
holds points at the airline. At each concurrency level, closed-loop clients (one thread and one
keep-alive connection each) send, in rotating order:

- `GET /health` to the airline node: the reference (uvicorn and FastAPI with no work behind it);
- `POST /v1/me/exchanges` `{"to": shop, "points": 5}` with a member token: one complete exchange,
  answered only after the supermarket credited the points and the airline confirmed (a signed
  peer call, two wallet transactions, both exchange logs, the egress audit event);
- `POST /v1/members/{ref}/purchases` with an operator key: one purchase earning points.

Then bulk earning: `POST /v1/purchases:batch` with 1,000 purchases per call (members rotating),
`--batches` calls from one client and then from two, each answered with 1,000 results; the rate
is purchases per second, and every purchase must come back earned.

Members rotate so concurrent requests mostly touch different wallets. Throughput is requests
over wall time; p50/p99 by nearest rank; the servers' CPU time is read from /proc. Afterwards
the benchmark checks every exchange confirmed, points conserved and both exchange logs equal.

    python benchmarks/exchange.py            # 1,500 requests per endpoint and level; levels 1, 4, 16
    python benchmarks/exchange.py --quick    # 200 requests per endpoint and level
    python benchmarks/exchange.py --write-docs
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    # `compliance` must be the package, not the sibling script: look in the repository first
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import httpx
from rich.console import Console

from benchmarks.httpload import Endpoint, Report, fmt_ms, percentile, replace_section, run_load
from compliance.consent import ConsentAction
from compliance.service import ConsentChange
from node.core.auth import Role
from node.core.processes import ServerProcess, free_port
from node.core.progress import progress_bar
from node.demo.alliance import BrandSpec, create_alliance, enable_exchange
from node.exchange.links import new_link_id
from node.runtime import Node

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "benchmarks.md"
MD_START, MD_END = "<!-- exchange:start -->", "<!-- exchange:end -->"
MEMBERS = 256
POINTS_EACH = 1_000_000
out = Console()
err = Console(stderr=True)


def prepare(base: Path) -> tuple[BrandSpec, BrandSpec, str, list[str], list[str]]:
    """Two nodes, members onboarded at both, linked, with points; return specs, operator key, tokens, refs."""
    air = BrandSpec("airline", "Sky Airline", Decimal("4.5"), Decimal("0.05"), free_port())
    shop = BrandSpec("shop", "FreshMart", Decimal("1"), Decimal("0.02"), free_port())
    create_alliance(base, [air, shop])
    refs = [f"B-{i:04d}" for i in range(MEMBERS)]
    nodes = {s.key: Node.open(base / s.key) for s in (air, shop)}
    for spec, other in ((air, shop), (shop, air)):
        node = nodes[spec.key]
        enable_exchange(node, [other.node_id])
        node.consent.register_members([(r, None, None) for r in refs])
        node.consent.change_many(
            [ConsentChange(r, (f"points_exchange:{other.node_id}",), ConsentAction.GRANT) for r in refs]
        )
    today = datetime.now(UTC).date()
    for r in refs:
        link_id = new_link_id()
        for spec, other in ((air, shop), (shop, air)):
            node = nodes[spec.key]
            member = node.consent.member_pseudonym(r)
            node.links.link(member, other.node_id, link_id, member_ref=r)
        member = nodes["airline"].consent.member_pseudonym(r)
        nodes["airline"].wallets.earn(member, POINTS_EACH, "promotion", today, today + timedelta(days=700))
    operator = nodes["airline"].staff_keys.issue("bench", Role.OPERATOR)
    tokens = [nodes["airline"].member_tokens.issue(r, 7200) for r in refs]
    for node in nodes.values():
        node.dispose()
    return air, shop, operator, tokens, refs


def endpoints(shop: BrandSpec, operator: str, tokens: list[str], refs: list[str]) -> list[Endpoint]:
    """/health (the reference), one exchange, one purchase."""
    members = [{"Authorization": f"Bearer {t}"} for t in tokens]
    staff = {"Authorization": f"Bearer {operator}"}
    body = {"to": shop.node_id, "points": 5}
    stamp = int(time.time())

    def health(c: httpx.Client, i: int) -> httpx.Response:
        return c.get("/health")

    def exchange(c: httpx.Client, i: int) -> httpx.Response:
        return c.post("/v1/me/exchanges", json=body, headers=members[i % len(members)])

    def earn(c: httpx.Client, i: int) -> httpx.Response:
        purchase = {"purchase_id": f"p{stamp}-{i}", "amount_fen": 12_345}
        return c.post(f"/v1/members/{refs[i % len(refs)]}/purchases", json=purchase, headers=staff)

    return [
        Endpoint("GET /health", health, 200),
        Endpoint("POST /v1/me/exchanges (airline -> supermarket, complete)", exchange, 201),
        Endpoint("POST /v1/members/{ref}/purchases (earn)", earn, 201),
    ]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print (optionally write) the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="200 requests per endpoint and level")
    ap.add_argument("--requests", type=int, default=None, help="requests per endpoint and level")
    ap.add_argument("--levels", default="1,4,16", help="concurrency levels, comma-separated")
    ap.add_argument("--budget", type=float, default=120.0, help="seconds at most per endpoint and level")
    ap.add_argument("--batches", type=int, default=None, help="bulk-earning calls of 1,000 purchases (default 40)")
    ap.add_argument("--write-docs", action="store_true", help="rewrite the exchange section of docs/benchmarks.md")
    args = ap.parse_args(argv)
    requests = args.requests or (200 if args.quick else 1500)
    levels = [int(x) for x in args.levels.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-exchange-") as tmp:
        base = Path(tmp)
        err.print("preparing two nodes and members …")
        air, shop, operator, tokens, refs = prepare(base)
        servers = [ServerProcess(base / s.key, s.port, base / f"{s.key}.log") for s in (air, shop)]
        for s in servers:
            s.start(wait=False)
        try:
            for s in servers:
                s.wait_ready()
            report = measure(servers, shop, operator, tokens, refs, requests, levels, args.budget)
            batches = args.batches or (6 if args.quick else 40)
            bulk = measure_bulk(servers, operator, refs, batches)
            checks = verify(base, air, shop, refs)
        finally:
            for s in servers:
                s.stop()
    out.print(report.rich())
    out.print(bulk.rich())
    for line in checks:
        out.print(line)
    if args.write_docs:
        shown = " ".join(a for a in (argv or sys.argv[1:]) if a != "--write-docs")
        section = (
            f"{report.markdown()}\n\n**{bulk.title}**\n\n{bulk.markdown()}\n\n"
            + "\n".join(f"- {line}" for line in checks)
            + f"\n\n`python benchmarks/exchange.py {shown}`, "
            f"{datetime.now(UTC):%Y-%m-%d}, {requests:,} requests per endpoint and level.\n"
        )
        replace_section(DOCS, MD_START, MD_END, "Exchange", section)
    return 0


def measure(
    servers: list[ServerProcess],
    shop: BrandSpec,
    operator: str,
    tokens: list[str],
    refs: list[str],
    requests: int,
    levels: list[int],
    budget: float,
) -> Report:
    """Every endpoint at every level, rounds rotating the order; ratios against /health at the same level."""
    eps = endpoints(shop, operator, tokens, refs)
    pids = [s.proc.pid for s in servers if s.proc is not None]
    report = Report(
        "Exchange and earn between two nodes on loopback (2 cores, SQLite WAL synchronous=FULL)",
        ["clients", "operation", "requests", "per second", "p50 ms", "p99 ms", "ratio vs /health", "server CPU ms/req"],
    )
    with progress_bar(err, remaining=True) as bar:
        task = bar.add_task("levels x endpoints", total=len(levels) * len(eps) * requests)
        for level in levels:
            clients = [httpx.Client(base_url=servers[0].base_url, timeout=60) for _ in range(level)]
            try:
                for ep in eps:
                    run_load(clients, ep, min(50, requests), budget, pids)  # warm-up
                loads = {}
                for r in range(2):
                    order = eps if r == 0 else eps[::-1]
                    for ep in order:
                        load = run_load(clients, ep, requests // 2, budget / 2, pids)
                        prev = loads.get(ep.name)
                        if prev is not None:
                            prev.latencies += load.latencies
                            prev.elapsed += load.elapsed
                            prev.server_cpu = (
                                None
                                if prev.server_cpu is None or load.server_cpu is None
                                else prev.server_cpu + load.server_cpu
                            )
                        else:
                            loads[ep.name] = load
                        bar.advance(task, len(load.latencies))
            finally:
                for c in clients:
                    c.close()
            health = loads[eps[0].name].rate
            for ep in eps:
                load = loads[ep.name]
                lat = sorted(load.latencies)
                report.rows.append(
                    [
                        str(level),
                        ep.name,
                        f"{len(lat):,}",
                        f"{load.rate:,.0f}",
                        fmt_ms(percentile(lat, 50)),
                        fmt_ms(percentile(lat, 99)),
                        f"{load.rate / health:.3f}",
                        "—" if load.server_cpu is None else fmt_ms(load.server_cpu / len(lat)),
                    ]
                )
    return report


def measure_bulk(servers: list[ServerProcess], operator: str, refs: list[str], batches: int) -> Report:
    """``batches`` calls of 1,000 purchases to the airline, from one client then two; purchases per second."""
    staff = {"Authorization": f"Bearer {operator}"}
    stamp = int(time.time())
    pids = [s.proc.pid for s in servers if s.proc is not None]
    report = Report(
        "Bulk earning: POST /v1/purchases:batch, 1,000 purchases per call (goal: 20,000 purchases/s)",
        [
            "clients",
            "calls",
            "purchases",
            "purchases per second",
            "p50 ms per call",
            "p99 ms per call",
            "server CPU µs/purchase",
        ],
    )

    def batch(c: httpx.Client, i: int) -> httpx.Response:
        items = [
            {"member_ref": refs[(i * 1000 + k) % len(refs)], "purchase_id": f"b{stamp}-{i}-{k}", "amount_fen": 12_345}
            for k in range(1000)
        ]
        r = c.post("/v1/purchases:batch", json={"purchases": items}, headers=staff)
        if r.status_code == 200 and r.json()["earned"] != 1000:
            raise RuntimeError(f"a batch earned {r.json()['earned']} of 1,000: {r.text[:300]}")
        return r

    for level in (1, 2):
        ep = Endpoint("POST /v1/purchases:batch", batch, 200, next_index=level * 1_000_000)
        clients = [httpx.Client(base_url=servers[0].base_url, timeout=120) for _ in range(level)]
        try:
            run_load(clients, ep, 2, 60, pids)  # warm-up
            load = run_load(clients, ep, batches, 600, pids)
        finally:
            for c in clients:
                c.close()
        lat = sorted(load.latencies)
        purchases = len(lat) * 1000
        report.rows.append(
            [
                str(level),
                f"{len(lat):,}",
                f"{purchases:,}",
                f"{purchases / load.elapsed:,.0f}",
                fmt_ms(percentile(lat, 50)),
                fmt_ms(percentile(lat, 99)),
                "—" if load.server_cpu is None else f"{load.server_cpu / purchases * 1e6:.0f}",
            ]
        )
    return report


def batch_sizes(node: Node) -> list[int]:
    """Exchanges per credit call, from the source's egress events (one per call, naming every member)."""
    from compliance.audit import AuditTrail

    return [
        e.subject_count or len(e.subject_pseudo_ids)
        for _, e in AuditTrail(node.audit.log, node.settings.node_id).events()
        if e.action == "pi.provide" and (e.purpose_code or "").startswith("points_exchange")
    ]


def verify(base: Path, air: BrandSpec, shop: BrandSpec, refs: list[str]) -> list[str]:
    """Every exchange confirmed, points conserved, both logs holding the same entries."""
    from node.core.settings import load_settings
    from node.exchange.protocol import SourceState

    a, s = (Node(load_settings(base / k.key)) for k in (air, shop))
    try:
        unfinished = a.outgoing.unfinished()
        entries_a = {e.data for e in a.store.log("exchange").entries()}
        entries_s = {e.data for e in s.store.log("exchange").entries()}
        today = datetime.now(UTC).date()
        received = sum(s.wallets.balance(s.consent.member_pseudonym(r), today) for r in refs)
        from sqlalchemy import func, select

        from node.exchange.store import ExchangeOutRow

        t = ExchangeOutRow.__table__
        with a.store.engine.connect() as conn:
            confirmed = conn.execute(select(func.count()).where(t.c.state == SourceState.CONFIRMED.value)).scalar_one()
        sizes = batch_sizes(a)
    finally:
        a.dispose()
        s.dispose()
    lines = [
        f"{confirmed:,} exchanges confirmed, {len(unfinished)} unfinished",
        f"exchange logs: {len(entries_a):,} entries at the airline, {len(entries_s):,} at the supermarket, "
        f"{'identical' if entries_a == entries_s else 'DIFFERENT'}",
        f"supermarket points received in total: {received:,} (= {confirmed:,} x 21: 5 x 4.5 fen x 0.95 = 21.375)",
        f"credit calls to the supermarket: {len(sizes):,} for {sum(sizes):,} exchanges; by exchanges per call: "
        + ", ".join(f"{lo}-{hi}: {sum(lo <= n <= hi for n in sizes):,}" for lo, hi in ((1, 1), (2, 4), (5, 8), (9, 64)))
        + f"; largest {max(sizes, default=0)}",
    ]
    if unfinished or entries_a != entries_s or received != confirmed * 21:
        raise SystemExit("\n".join(["consistency check FAILED", *lines]))
    return lines


if __name__ == "__main__":
    sys.exit(main())
