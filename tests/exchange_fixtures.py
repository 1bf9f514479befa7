"""Two brands' nodes served as separate processes on 127.0.0.1, with linked, consenting members."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx

from compliance.audit import AuditTrail
from compliance.consent import ConsentAction
from node.core.processes import ServerProcess, free_port
from node.core.settings import load_settings
from node.demo.alliance import BrandSpec, create_alliance, enable_exchange
from node.exchange.links import new_link_id
from node.exchange.records import CommittedExchange
from node.runtime import Node

STARTING_POINTS = 10_000


def specs() -> tuple[BrandSpec, BrandSpec]:
    """An airline (a mile is worth 4.5 fen, 5% fee) and a supermarket (1 fen a point, 2% fee)."""
    return (
        BrandSpec("airline", "Sky Airline", Decimal("4.5"), Decimal("0.05"), free_port()),
        BrandSpec("shop", "FreshMart", Decimal("1"), Decimal("0.02"), free_port()),
    )


@dataclass
class Pair:
    """The two nodes: their data directories, server processes, and (lazily) local handles."""

    base: Path
    source: BrandSpec
    destination: BrandSpec
    servers: dict[str, ServerProcess]
    _nodes: dict[str, Node] = field(default_factory=dict)

    def node(self, key: str) -> Node:
        """The node's data in this process, for reading and setting up (SQLite allows it next to the server).

        Not :meth:`Node.open`: that would also run the audit outbox recovery, racing the server.
        """
        if key not in self._nodes:
            self._nodes[key] = Node(load_settings(self.base / key))
        return self._nodes[key]

    def client(self, key: str, member: str | None = None) -> httpx.Client:
        """An HTTP client for a brand's API, acting for ``member`` if given."""
        headers = {}
        if member is not None:
            headers["authorization"] = f"Bearer {self.node(key).member_tokens.issue(member, 3600)}"
        return httpx.Client(base_url=self.servers[key].base_url, headers=headers, timeout=30)

    def balance(self, key: str, member: str) -> int:
        """A member's balance at a brand, read from its database."""
        node = self.node(key)
        return node.wallets.balance(node.consent.member_pseudonym(member), datetime.now(UTC).date())

    def log_entries(self, key: str) -> list[bytes]:
        """Every entry of a brand's exchange log."""
        return [e.data for e in self.node(key).store.log("exchange").entries()]

    def committed(self, key: str) -> list[CommittedExchange]:
        """The brand's exchange log, parsed."""
        return [CommittedExchange.from_entry(d) for d in self.log_entries(key)]

    def batch_sizes(self) -> list[int]:
        """How many exchanges each of the source's credit calls carried (one egress event per call)."""
        node = self.node("airline")
        return [
            e.subject_count or len(e.subject_pseudo_ids)
            for _, e in AuditTrail(node.audit.log, node.settings.node_id).events()
            if e.action == "pi.provide" and (e.purpose_code or "").startswith("points_exchange")
        ]

    def close(self) -> None:
        """Stop the servers and close local handles."""
        for server in self.servers.values():
            server.stop()
        for node in self._nodes.values():
            node.dispose()


def build_pair(
    base: Path,
    members: list[str],
    *,
    linked: bool = True,
    fault_files: bool = False,
    env: dict[str, str] | None = None,
) -> Pair:
    """Create both nodes, onboard ``members`` at both with consent, link them, give each points at the source.

    With ``fault_files`` each server watches ``<base>/<key>.faults`` (:mod:`node.faults`); ``env``
    is added to both servers' environment (settings as ``ALLIANCE_*``).
    """
    source, destination = specs()
    create_alliance(base, [source, destination], recovery_interval=0.2)
    today = datetime.now(UTC).date()
    for spec, other in ((source, destination), (destination, source)):
        node = Node.open(base / spec.key)
        enable_exchange(node, [other.node_id])
        node.consent.register_members([(m, None, None) for m in members])
        node.consent.change_many([_grant(m, f"points_exchange:{other.node_id}") for m in members])
        node.dispose()
    if linked:
        link_directly(base, source, destination, members)
    src = Node.open(base / source.key)
    for m in members:
        member = src.consent.member_pseudonym(m)
        src.wallets.earn(member, STARTING_POINTS, "promotion", today, today + timedelta(days=700), ref=f"seed:{m}")
    src.dispose()
    servers = {
        spec.key: ServerProcess(
            base / spec.key,
            spec.port,
            base / f"{spec.key}.log",
            env=(env or {}) | ({"ALLIANCE_FAULT_FILE": str(base / f"{spec.key}.faults")} if fault_files else {}),
        )
        for spec in (source, destination)
    }
    for server in servers.values():
        server.start(wait=False)
    for server in servers.values():
        server.wait_ready()
    return Pair(base, source, destination, servers)


def link_directly(base: Path, source: BrandSpec, destination: BrandSpec, members: list[str]) -> None:
    """Record the same link id on both nodes, as the link-code flow would."""
    nodes = {s.key: Node.open(base / s.key) for s in (source, destination)}
    for m in members:
        link_id = new_link_id()
        for spec, other in ((source, destination), (destination, source)):
            node = nodes[spec.key]
            node.links.link(node.consent.member_pseudonym(m), other.node_id, link_id, member_ref=m)
    for node in nodes.values():
        node.dispose()


def _grant(member: str, purpose: str):  # type: ignore[no-untyped-def]
    from compliance.service import ConsentChange

    return ConsentChange(member, (purpose,), ConsentAction.GRANT, collection_method="test")


def day() -> date:
    """Today (UTC)."""
    return datetime.now(UTC).date()
