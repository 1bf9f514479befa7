"""Setting up an alliance on one machine: several brands' nodes, one registry, exchange switched on.

Used by the demo, the benchmarks and the multi-node tests; a real alliance does the same steps
with ``alliance-node init``, a registry file its members agree on, and ``pia``/``feature``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from compliance.pia import Feature, example_assessment
from node.core.auth import Caller, Role, current_caller
from node.core.datadir import add_peer, init_node
from node.core.settings import REGISTRY_FILE, VKEY_FILE, Peer
from node.demo.consent import notice_for
from node.runtime import Node


@dataclass(frozen=True)
class BrandSpec:
    """One brand of a local alliance."""

    key: str  # short name, e.g. "airline"; the node id is ``<key>.alliance.example``
    name: str
    point_value_fen: Decimal
    exchange_fee: Decimal
    port: int

    @property
    def node_id(self) -> str:
        """The brand's node id."""
        return f"{self.key}.alliance.example"

    def url(self, host: str = "127.0.0.1") -> str:
        """Where the brand's node listens."""
        return f"http://{host}:{self.port}"


def render_registry(alliance: str, version: int, brands: list[tuple[BrandSpec, str]]) -> str:
    """The registry file for ``brands`` (each with its verifier key), as TOML."""
    lines = [f"alliance = {json.dumps(alliance)}", f"version = {version}"]
    for spec, vkey in brands:
        lines += [
            "",
            "[[brands]]",
            f"node_id = {json.dumps(spec.node_id)}",
            f"name = {json.dumps(spec.name)}",
            f"vkey = {json.dumps(vkey)}",
            f"url = {json.dumps(spec.url())}",
            'region = "CN"',
            f'point_value_fen = "{spec.point_value_fen}"',
            f'exchange_fee = "{spec.exchange_fee}"',
        ]
    if len(brands) > 1:  # the alliance's model is trained jointly: its brands are joint handlers (PIPL Art. 20)
        handlers = ", ".join(json.dumps(spec.node_id) for spec, _ in brands)
        lines += [
            "",
            "[[joint]]",
            'purpose = "joint_modeling"',
            f"handlers = [{handlers}]",
            f"agreement = {json.dumps(alliance + ' joint modelling agreement, version ' + str(version))}",
            "[joint.duties]",
            'notice = "each"',
            'rights_contact = "each"',
            'security = "each"',
            f"model_release = {json.dumps(brands[0][0].node_id)}",
        ]
    return "\n".join(lines) + "\n"


def create_alliance(base: Path, specs: list[BrandSpec], alliance: str = "Demo Alliance", **fields: object) -> None:
    """Initialise one node per brand under ``base/<key>``, each holding the registry and trusting the others."""
    for spec in specs:
        init_node(base / spec.key, spec.node_id, display_name=spec.name, port=spec.port, **fields)
    vkeys = {s.key: (base / s.key / VKEY_FILE).read_text().strip() for s in specs}
    registry = render_registry(alliance, 1, [(s, vkeys[s.key]) for s in specs])
    for spec in specs:
        (base / spec.key / REGISTRY_FILE).write_text(registry)
        for other in specs:
            if other.key != spec.key:
                add_peer(base / spec.key, Peer(node_id=other.node_id, vkey=vkeys[other.key], url=other.url()))


def enable_exchange(node: Node, partners: list[str]) -> str:
    """Publish the brand's notice, approve its impact assessment (two officers), switch exchange and
    joint modeling on.

    Returns the assessment id.
    """
    if node.consent.current_notice_or_none() is None:
        node.consent.publish_notice(notice_for(node, partners))
    token = current_caller.set(Caller(Role.COMPLIANCE, "ann"))
    try:
        record = node.pia.submit(example_assessment(), "ann")
        current_caller.set(Caller(Role.COMPLIANCE, "bo"))
        node.pia.approve(record.pia_id, "bo")
        current_caller.set(Caller(Role.OPERATOR, "olga"))
        for feature in (Feature.POINTS_EXCHANGE, Feature.JOINT_MODELING):  # the assessment covers both
            node.pia.enable(feature, record.pia_id, "olga")
    finally:
        current_caller.reset(token)
    return record.pia_id
