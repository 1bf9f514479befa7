"""A node's data directory: creating it (key, verifier keys, config, database) and opening it."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from compliance.egress import CrossBorderCounter, MechanismRegistry
from compliance.fieldcrypt import FieldCipher, create_key_file, load_key_file
from compliance.pia_service import PiaService
from compliance.prompts import PromptCounter
from compliance.pseudonyms import Keyring
from compliance.retention import Retention
from compliance.rights_service import RightsService
from compliance.service import ConsentService
from compliance.store import ComplianceStore
from ledger import note
from ledger.storage import LedgerStore, create_engine
from ledger.witness import Witness
from node.core.auth import Caller, Role, StaffKeys, current_caller
from node.core.settings import (
    DATA_KEY_FILE,
    DEFAULT_LOGS,
    VKEY_FILE,
    WITNESS_VKEY_FILE,
    NodeSettings,
    Peer,
    load_settings,
    write_config,
)

if TYPE_CHECKING:
    from compliance.audit import AuditFilter
    from node.exchange.links import LinkStore
    from node.exchange.service import ExchangeService
    from node.peers.outbound import Outbound
    from node.peers.registry import Registry
    from node.settlement.service import SettlementService
    from node.wallet.loyalty import Loyalty
    from node.wallet.store import WalletStore


class NodeExistsError(FileExistsError):
    """``init`` found an existing key and refuses to overwrite it."""


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def init_node(data_dir: Path, node_id: str, **fields: object) -> NodeSettings:
    """Create a node in ``data_dir``: Ed25519 key, ``node.vkey``, ``witness.vkey``, config, database.

    Refuses (``NodeExistsError``) if a key is already there: a node's key is its identity.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = NodeSettings(data_dir=data_dir, node_id=node_id, **fields)  # type: ignore[arg-type]
    if settings.key_path.exists():
        raise NodeExistsError(f"{settings.key_path} already exists: refusing to overwrite this node's key")
    signer = note.Signer.generate(node_id)
    _write_private(settings.key_path, signer.to_skey() + "\n")
    (data_dir / VKEY_FILE).write_text(signer.verifier().to_vkey() + "\n")
    (data_dir / WITNESS_VKEY_FILE).write_text(signer.verifier(note.ALG_COSIGNATURE_V1).to_vkey() + "\n")
    create_key_file(data_dir / DATA_KEY_FILE)
    write_config(settings)
    node = Node(settings)
    node.create_schemas()
    for name in DEFAULT_LOGS:
        node.store.ensure_log(name, settings.origin(name))
    node.dispose()
    return settings


def add_peer(data_dir: Path, peer: Peer) -> NodeSettings:
    """Trust ``peer``'s key (replacing an older entry with the same node id) and save the config."""
    settings = load_settings(data_dir)
    note.Verifier.from_vkey(peer.vkey)  # refuse a malformed key before saving it
    settings.peers = [p for p in settings.peers if p.node_id != peer.node_id] + [peer]
    write_config(settings)
    return settings


@dataclass
class Node:
    """An open node: settings, signing key, ledger store and witness."""

    settings: NodeSettings

    @classmethod
    def open(cls, data_dir: Path, recover: bool = True, **overrides: object) -> Node:
        """Open the node in ``data_dir`` and make sure its schema and default logs exist.

        ``recover`` appends audit events a crash left staged: the serving process does it; a
        command run next to a live server must not, or it could append an event the server is
        about to append itself.
        """
        node = cls(load_settings(data_dir, **overrides))
        node.cipher  # noqa: B018  fail now, with a clear message, if data.key is missing
        node.create_schemas()
        if recover:
            node.recover_audit_outbox()
        for name in DEFAULT_LOGS:
            node.store.ensure_log(name, node.settings.origin(name))
        return node

    @cached_property
    def signer(self) -> note.Signer:
        """The node's Ed25519 signer, read from its key file."""
        path = self.settings.key_path
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist: run `alliance-node init`")
        signer = note.Signer.from_skey(path.read_text())
        if signer.name != self.settings.node_id:
            raise ValueError(f"key {path} belongs to {signer.name!r}, not node {self.settings.node_id!r}")
        return signer

    @cached_property
    def store(self) -> LedgerStore:
        """The node's ledger store on its database."""
        engine = create_engine(
            self.settings.db_url,
            sqlite_synchronous=self.settings.sqlite_synchronous,
            sqlite_busy_timeout=self.settings.sqlite_busy_timeout,
        )
        return LedgerStore(engine)

    def peer_verifiers(self) -> dict[str, note.Verifier]:
        """The checkpoint keys of every configured peer, by node id."""
        return {p.node_id: note.Verifier.from_vkey(p.vkey) for p in self.settings.peers}

    def trusted_log_keys(self, origin: str) -> list[note.Verifier]:
        """Keys trusted for ``origin``: a peer's key signs its logs, ``<peer node id>/<log name>``."""
        node_id, _, log_name = origin.partition("/")
        if not log_name or "/" in log_name:
            return []
        key = self.peer_verifiers().get(node_id)
        return [key] if key else []

    @cached_property
    def keyring(self) -> Keyring:
        """Members' pseudonym keys (crypto-shredding deletes them)."""
        return Keyring(self.store.engine, self.settings.node_id, self.cipher)

    @cached_property
    def cipher(self) -> FieldCipher:
        """Field-level encryption of member identifiers, with the key in ``data.key``."""
        return load_key_file(self.settings.data_dir / DATA_KEY_FILE)

    @cached_property
    def staff_keys(self) -> StaffKeys:
        """Staff API keys, stored hashed."""
        return StaffKeys(self.store.engine)

    @cached_property
    def consent(self) -> ConsentService:
        """Notices, consent and the gate, auditing into this node's ``audit`` log."""
        return ConsentService(
            ComplianceStore(self.store.engine, self.cipher),
            self.keyring,
            self.signer,
            self.audit,
            audit_batch=self.audit_many,
            current_actor=self.current_actor,
            after_change=self._after_consent_change,
        )

    def _after_consent_change(self, records: list[Any]) -> None:
        # withdrawing points_exchange:<brand> ends the member's link with that brand (issue 4)
        from compliance.consent import ConsentAction

        for r in records:
            if r.action is ConsentAction.WITHDRAW and r.purpose_code.startswith("points_exchange:"):
                self.links.unlink(r.member, r.purpose_code.split(":", 1)[1])

    @cached_property
    def links(self) -> LinkStore:
        """Pairwise links of members with partner brands."""
        from node.exchange.links import LinkStore

        return LinkStore(self.store.engine)

    @cached_property
    def pia(self) -> PiaService:
        """Impact assessments and the feature switches they gate."""
        return PiaService(self.store.engine, self.audit)

    @cached_property
    def retention(self) -> Retention:
        """Legal holds and the retention purge."""
        return Retention(self.store.engine, self.keyring.live, self.audit)

    @cached_property
    def prompts(self) -> PromptCounter:
        """The consent-prompt counter: no repeated asking after a refusal."""
        return PromptCounter(self.store.engine)

    @cached_property
    def xborder(self) -> CrossBorderCounter:
        """Distinct individuals sent abroad this calendar year."""
        return CrossBorderCounter(self.store.engine)

    @cached_property
    def mechanisms(self) -> MechanismRegistry:
        """Cross-border transfer mechanisms in force, per country."""
        return MechanismRegistry(self.store.engine)

    @cached_property
    def outbound(self) -> Outbound:
        """The node's only way out: every outbound call is authorised here first."""
        from node.peers.outbound import Outbound

        return Outbound(self)

    @cached_property
    def rights(self) -> RightsService:
        """Rights requests: access, correction, erasure."""
        held = self.retention.held
        return RightsService(
            self.consent, self.audit_events_about, lambda p: p in held(), sources=(self.wallets, self.links)
        )

    @cached_property
    def registry(self) -> Registry:
        """The alliance registry (``registry.toml``): every brand's node, key, URL and point value."""
        from node.peers.registry import load_registry

        return load_registry(self.settings.registry_path)

    @cached_property
    def exchanges(self) -> ExchangeService:
        """Points exchange with other brands: quotes, both sides of the protocol, recovery."""
        from node.exchange.service import ExchangeService

        return ExchangeService(self)

    @cached_property
    def loyalty(self) -> Loyalty:
        """Earning on purchases, wallet views and tiers."""
        from node.wallet.loyalty import Loyalty

        return Loyalty(self)

    @cached_property
    def settlement(self) -> SettlementService:
        """Settlement statements, log reconciliation with peers, liability."""
        from node.settlement.service import SettlementService

        return SettlementService(self)

    @cached_property
    def wallets(self) -> WalletStore:
        """Members' points wallets (keyed by pseudonym)."""
        from node.wallet.store import WalletStore

        return WalletStore(self.store.engine)

    def audit_events_about(self, pseudonym: str) -> list[dict[str, Any]]:
        """Every audit event naming ``pseudonym`` as subject or actor (through the pseudonym index)."""
        from compliance.audit_index import AuditIndex

        index = AuditIndex(self.store.engine, self.store.log("audit"))
        return [{"index": i, **e.model_dump(mode="json")} for i, e in index.about(pseudonym)]

    def audit(self, action: str, **fields: Any) -> int:
        """Append one audit event to the ``audit`` log; the actor is whoever this request acts for."""
        return self.audit_many([(action, fields)])

    def current_actor(self) -> dict[str, str]:
        """Who the current request acts for, as an audit event's ``actor``."""
        caller = current_caller.get()
        if caller is None:
            return {"type": "service", "id": self.settings.node_id, "role": "node"}
        kind = "member" if caller.role is Role.MEMBER else "staff"
        return {"type": kind, "id": self._actor_id(caller), "role": caller.role.value}

    def audit_many(self, events: list[tuple[str, dict[str, Any]]]) -> int:
        """Append several audit events in one atomic batch; return the first one's index.

        The actor is whoever the current request acts for, unless an event names its own (an
        event staged in the outbox keeps the actor of the request that staged it).
        """
        from compliance.audit import AuditEvent, AuditTrail

        actor = self.current_actor()
        batch = [AuditEvent(node_id=self.settings.node_id, action=a, **({"actor": actor} | f)) for a, f in events]
        return AuditTrail(self.store.log("audit"), self.settings.node_id).record_many(batch)

    def recover_audit_outbox(self) -> int:
        """Append staged audit events a crash left behind (each exactly once); return how many."""
        from compliance import outbox
        from compliance.audit import AuditTrail
        from compliance.audit_index import AuditIndex

        def logged(staged: list[dict[str, Any]]) -> set[str]:
            wanted = {f["event_id"] for f in staged}
            if all(f.get("subject_pseudo_ids") for f in staged):  # the index finds them by subject
                index = AuditIndex(self.store.engine, self.store.log("audit"))
                subjects = {p for f in staged for p in f["subject_pseudo_ids"]}
                return {e.event_id for p in subjects for _, e in index.about(p)} & wanted
            trail = AuditTrail(self.store.log("audit"), self.settings.node_id)
            return {e.event_id for _, e in trail.events() if e.event_id in wanted}

        return outbox.recover(self.store.engine, logged, self.audit_many)

    def export_audit(self, flt: AuditFilter, out: BinaryIO, progress: Callable[[int], None] | None = None) -> Any:
        """Write an audit bundle for ``flt`` and record the export itself in the audit trail.

        The caller keeps the bundle only if this returns: the export is audited first.
        """
        from compliance.audit_bundle import export_bundle

        manifest = export_bundle(self.store.log("audit"), self.signer, flt, out, progress=progress)
        details: dict[str, str | int | None] = {f"filter.{k}": v for k, v in flt.to_dict().items()}
        details |= {"count": manifest.count, "tree_size": manifest.tree_size, "events_sha256": manifest.events_sha256}
        self.audit(
            "audit.export",
            subject_pseudo_ids=[flt.subject] if flt.subject else [],
            record_count=manifest.count,
            details=details,
        )
        return manifest

    def _actor_id(self, caller: Caller) -> str:
        # members appear in the audit trail as pseudonyms, never by their brand reference
        return self.keyring.pseudonym(caller.id, create=False) if caller.role is Role.MEMBER else caller.id

    def create_schemas(self) -> None:
        """Create the ledger's tables and migrate the node's to the newest revision (safe from several processes)."""
        from node.core.schema import upgrade

        self.store.create_schema()
        upgrade(self.store.engine)

    @cached_property
    def witness(self) -> Witness:
        """This node acting as a witness of its peers' logs."""
        return Witness(self.signer, self.trusted_log_keys, self.store.witness_state())

    def dispose(self) -> None:
        """Close the database connections and the outbound HTTP client."""
        if "outbound" in self.__dict__:
            self.outbound.close()
        if "store" in self.__dict__:
            self.store.close()
