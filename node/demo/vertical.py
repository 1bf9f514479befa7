"""The demo's cross-brand phase: the supermarket's churn model with the airline's side of shared customers.

Customers of the airline who also shop at the supermarket (``cdnow.SHARED_WITH``) are members of
both, with the same phone number; their purchases are split between the two brands, so each sees
part of their history. Every member registered a phone number; the shared members' apps then ask
both brands for cross-brand consent (``joint_modeling`` and ``joint_modeling:<the other brand>``),
and 70% of them agree at both. The supermarket runs PSI with the airline over signed peer calls
(each node's own API, in this process) and trains a vertical churn model with DP at both brands.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console

from compliance.audit import AuditFilter
from compliance.consent import ConsentAction
from compliance.provisions import PROVISION_FILTER, report
from compliance.service import ConsentChange
from federation.vertical_server import VerticalSettings
from node.api.app import create_app
from node.core.processes import free_port
from node.core.progress import progress_bar
from node.demo import cdnow
from node.demo.alliance import BrandSpec, create_alliance, enable_exchange
from node.demo.learning import demo_window
from node.learning.rows import ChurnWindow
from node.learning.vertical_run import VerticalOutcome, print_vertical, vertical_nodes
from node.runtime import Node
from node.wallet.bulk import import_earns

PARTNER, LABEL_HOLDER, _ = cdnow.SHARED_WITH  # the supermarket learns, with the airline's features
AGREE = 70  # percent of shared customers who grant cross-brand consent at both brands


def _agrees(customer_id: str) -> bool:
    return int.from_bytes(hashlib.sha256(b"cross-brand|" + customer_id.encode()).digest()[:4], "big") % 100 < AGREE


def _live(node: Node, refs: list[str]) -> set[str]:
    """The members of ``refs`` still registered (the rights drill erased some)."""
    alive, registered = set(node.keyring.by_index()), set(node.consent.store.birth_dates())
    index = node.consent.store.cipher.index
    return {r for r in refs if index(r) in alive and index(r) in registered}


def register_phones(nodes: dict[str, Node], customers: dict[str, list[str]], ref_of: Callable[[str, str], str]) -> None:
    """Every member's phone number at every brand (the same number for the same customer)."""
    for brand, ids in customers.items():
        nodes[brand].consent.set_phones([(ref_of(brand, c), cdnow.phone_of(c)) for c in ids], skip_gone=True)


def vertical_phase(
    nodes: dict[str, Node], customers: dict[str, list[str]], ref_of: Callable[[str, str], str], console: Console
) -> VerticalOutcome:
    """Phones, cross-brand consent of the shared customers, PSI and the vertical run; print the result."""
    holder, partner = nodes[LABEL_HOLDER], nodes[PARTNER]
    register_phones(nodes, customers, ref_of)
    both = sorted(set(customers[LABEL_HOLDER]) & set(customers[PARTNER]))
    live = {b: _live(nodes[b], [ref_of(b, c) for c in both]) for b in (LABEL_HOLDER, PARTNER)}
    agreeing = [c for c in both if _agrees(c) and all(ref_of(b, c) in live[b] for b in live)]  # not erased
    for brand, other in ((LABEL_HOLDER, partner), (PARTNER, holder)):
        purposes = ("joint_modeling", f"joint_modeling:{other.settings.node_id}")
        nodes[brand].consent.change_many(
            [
                ConsentChange(ref_of(brand, c), purposes, ConsentAction.GRANT, collection_method="demo-app")
                for c in agreeing
            ]
        )
    console.print(
        f"{len(both):,} customers are members of {LABEL_HOLDER} and {PARTNER} (same phone number); "
        f"{len(agreeing):,} granted joint_modeling and joint_modeling:<the other brand> at both. "
        f"{LABEL_HOLDER} learns churn with {PARTNER}'s features of them: PSI on the phone numbers over signed "
        "peer calls, then vertical training, epsilon 3 at each brand."
    )
    apps = {n.settings.node_id: create_app(n) for n in (holder, partner)}
    for n in (holder, partner):
        connect(n, apps)
    try:
        with progress_bar(console) as bar:
            task = bar.add_task("private set intersection", total=2)
            outcome = vertical_nodes(
                holder,
                [partner],
                "demo-vertical",
                demo_window(),
                VerticalSettings(run="demo-vertical"),
                progress=lambda message: bar.update(task, description=message, advance=1),
            )
    finally:
        for n in (holder, partner):
            n.outbound.close()  # back to the network client
    print_vertical(outcome.to_json(), console)
    return outcome


def joint_rights_phase(nodes: dict[str, Node], customers: list[str], ref_of: Callable[[str, str], str],
                       console: Console) -> bool | None:
    """A customer linked at both brands of the run withdraws joint modeling at one: one recovery pass takes
    the withdrawal to the other (PIPL Art. 20); then each brand's records of provision (Art. 23)."""
    holder, partner = nodes[LABEL_HOLDER], nodes[PARTNER]
    there = partner.settings.node_id
    live = _live(holder, [ref_of(LABEL_HOLDER, c) for c in customers])
    pseudonyms = holder.keyring.pseudonyms(sorted(live), create=False)
    customer = next((c for c in customers if ref_of(LABEL_HOLDER, c) in live
                     and holder.links.link_of(pseudonyms[ref_of(LABEL_HOLDER, c)], there)), None)
    if customer is None:
        console.print("No customer of the run linked their accounts at both brands: the joint withdrawal is skipped.")
        return None
    apps = {n.settings.node_id: create_app(n) for n in (holder, partner)}
    for n in (holder, partner):
        connect(n, apps)
    try:
        holder.consent.change(ref_of(LABEL_HOLDER, customer), ["joint_modeling"], ConsentAction.WITHDRAW)
        holder.exchange_recovery.recover()  # one recovery pass delivers the notice
    finally:
        for n in (holder, partner):
            n.outbound.close()
    link_id = holder.links.link_of(pseudonyms[ref_of(LABEL_HOLDER, customer)], there)
    theirs = partner.links.member_ref(str(link_id))  # the same person's account there, by the pairwise link
    out = theirs is not None and not partner.consent.decisions(theirs)["joint_modeling"].allowed
    console.print(
        f"Customer {customer} withdrew joint modeling at {LABEL_HOLDER}; the registry lists both brands as joint "
        f"handlers of it, so one recovery pass sent {PARTNER} a signed notice: "
        + ("recorded there too, and out of both brands' next runs." if out else "[red]NOT recorded there[/red].")
    )
    for node in (holder, partner):
        rows = report(node.audit.select(AuditFilter(action=PROVISION_FILTER)))
        by = Counter(p.purpose for p in rows)
        console.print(
            f"  {node.settings.node_id}: {len(rows):,} records of provision ("
            + ", ".join(f"{n:,} {purpose}" for purpose, n in sorted(by.items()))
            + "): `alliance-node provisions report` lists them; `audit export --provisions` proves them."
        )
    return out


def shared_pair(base: Path, shared: int = 240, own: int = 60) -> dict[str, Node]:
    """Two brands' nodes (``airline``, ``shop``) for tests and benchmarks: ``shared`` people members of
    both with the same phone number and both consents, ``own`` more at each; churn at the airline
    follows how recently they bought at the shop, so the shop's features carry signal. The nodes
    reach each other's API in this process."""
    return shared_brands(base, ("airline", "shop"), shared, own)


THIRD = BrandSpec("coffee", "Bean There", Decimal("2"), Decimal("0.03"), 0)


def shared_brands(base: Path, keys: tuple[str, ...], shared: int = 240, own: int = 60) -> dict[str, Node]:
    """:func:`shared_pair` for two or three brands (``airline``, ``shop``, ``coffee``): the airline's
    members are people ``0 .. shared+own``, every other brand's ``own .. shared+2*own``; each gives
    every brand the joint modeling consents, and the exchange consent for linking accounts."""
    known = {
        "airline": BrandSpec("airline", "Sky Airline", Decimal("4.5"), Decimal("0.05"), free_port()),
        "shop": BrandSpec("shop", "FreshMart", Decimal("1"), Decimal("0.02"), free_port()),
        "coffee": BrandSpec(THIRD.key, THIRD.name, THIRD.point_value_fen, THIRD.exchange_fee, free_port()),
    }
    specs = [known[k] for k in keys]
    create_alliance(base, specs)
    nodes = {s.key: Node.open(base / s.key) for s in specs}
    for spec in specs:
        enable_exchange(nodes[spec.key], [o.node_id for o in specs if o is not spec])
    window = ChurnWindow(datetime.now(UTC).date() - timedelta(days=180), datetime.now(UTC).date())
    for key, node in nodes.items():
        others = [o.node_id for o in specs if o.key != key]
        people = range(0, shared + own) if key == "airline" else range(own, shared + 2 * own)
        refs = {i: f"{node.settings.node_id}:{i}" for i in people}
        node.consent.register_members([(r, date(1990, 1, 1), None) for r in refs.values()])
        node.consent.set_phones([(r, f"+86139{i:08d}") for i, r in refs.items()])
        purposes = ("joint_modeling", *(f"joint_modeling:{o}" for o in others))
        if len(specs) > 2:
            purposes += tuple(f"points_exchange:{o}" for o in others)
        node.consent.change_many(
            [ConsentChange(r, purposes, ConsentAction.GRANT, collection_method="test") for r in refs.values()]
        )
        pseudonyms = node.keyring.pseudonyms(list(refs.values()))
        import_earns(node.wallets, [row for i, r in refs.items() for row in _earns(pseudonyms[r], i, key, window)])
    apps = {n.settings.node_id: create_app(n) for n in nodes.values()}
    for n in nodes.values():
        connect(n, apps)
    return nodes


def _earns(member: str, person: int, brand: str, window: ChurnWindow) -> list[tuple]:  # type: ignore[type-arg]
    rng = random.Random(person * 7919 + len(brand))
    active = random.Random(person).random() < 0.5  # the same person, seen by both brands
    if brand == "airline":
        days = [window.cutoff - timedelta(days=rng.randint(1, 200)) for _ in range(rng.randint(1, 4))]
        days += [window.cutoff + timedelta(days=rng.randint(1, 150))] if active else []
    else:
        back = (1, 20) if active else (120, 300)
        days = [window.cutoff - timedelta(days=rng.randint(*back)) for _ in range(rng.randint(2, 6))]
    return [
        (member, rng.randint(20, 900), "purchase", d, d + timedelta(days=730), f"p:{brand}:{person}:{k}")
        for k, d in enumerate(days)
    ]


def connect(node: Node, apps: dict[str, Any]) -> None:
    """Send ``node``'s peer calls to the other nodes' apps (node id -> ASGI app) in this process."""
    known = {p: node.outbound.destination(p) for p in apps if p != node.settings.node_id}
    node.outbound.connect_in_process({d[1]: apps[p] for p, d in known.items() if d is not None and d[1]})
