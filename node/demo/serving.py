"""``alliance-node demo --serve``: the demo's nodes left running, with a way in for a person.

Each brand's node is served again on its own port (the registry's), a staff key is issued for
its operator and its compliance officer, and one member's privacy-centre link is printed, until
Ctrl-C. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from rich.console import Console

from node.core.auth import Role
from node.core.processes import ServerProcess
from node.demo import cdnow
from node.runtime import Node


def registered_members(node: Node, brand: str, count: int) -> list[str]:
    """``count`` of the demo's members at ``brand`` (their references are the brand and the CDNOW id)."""
    brands = cdnow.split_customers(cdnow.purchases())
    refs: Iterator[str] = (f"{brand}-{c}" for c, b in brands.items() if b == brand)
    found = []
    for ref in refs:
        if node.consent.store.member(ref) is not None:
            found.append(ref)
            if len(found) == count:
                break
    return found


def _ways_in(data_dir: Path, brand: str) -> tuple[int, dict[str, str], str | None]:
    """The node's port, fresh staff keys (operator, compliance) and one of its members."""
    node = Node.open(data_dir)
    try:
        keys = {
            "operator": node.staff_keys.issue("demo-operator", Role.OPERATOR),
            "compliance": node.staff_keys.issue("demo-officer", Role.COMPLIANCE),
        }
        members = registered_members(node, brand, 1)
        return node.settings.port, keys, members[0] if members else None
    finally:
        node.dispose()


def serve_until_interrupted(base: Path, brands: list[str], console: Console) -> None:
    """Serve every brand's node in ``base`` and print how to get in, until Ctrl-C."""
    servers: list[ServerProcess] = []
    console.rule("The alliance, served on 127.0.0.1 (Ctrl-C stops it)")
    try:
        for brand in brands:
            port, keys, member = _ways_in(base / brand, brand)
            server = ServerProcess(base / brand, port, base / f"{brand}-serve.log").start()
            servers.append(server)
            console.print(f"[bold]{brand}[/bold]  {server.base_url}/  (API docs: {server.base_url}/docs)")
            # soft wrap: a link folded over lines cannot be copied
            console.print(f"  console         {server.base_url}/console/sign-in", soft_wrap=True)
            console.print(f"  operator key    {keys['operator']}", soft_wrap=True, highlight=False)
            console.print(f"  compliance key  {keys['compliance']}", soft_wrap=True, highlight=False)
            if member is not None:
                console.print(f"  privacy centre  {_privacy_link(server, keys['operator'], member)}", soft_wrap=True)
                console.print(f"                  (member {member}; the link works once, within 5 minutes)")
        console.print("a new privacy link: POST /v1/members/{ref}/privacy-link with the operator key")
        while all(s.alive() for s in servers):
            time.sleep(0.5)
        console.print("[red]a node stopped: see its -serve.log in the demo directory")
    except KeyboardInterrupt:
        console.print("stopping the nodes")
    finally:
        for server in servers:
            server.stop()


def _privacy_link(server: ServerProcess, operator_key: str, member: str) -> str:
    """What the brand's app would open for ``member``."""
    r = httpx.post(
        f"{server.base_url}/v1/members/{member}/privacy-link", headers={"Authorization": f"Bearer {operator_key}"}
    )
    r.raise_for_status()
    return f"{server.base_url}{r.json()['url']}"
