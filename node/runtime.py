"""The composition root: a :class:`Node` opens a data directory and wires the node's parts together.

It builds each store and service once, on first use, and hands every service its collaborators
in its constructor; no service holds the Node. Only the entry points import this module: the API
(:mod:`node.api`), the CLI (:mod:`node.cli`), the demo (:mod:`node.demo`) and the ClientApp
module a SuperNode loads (:mod:`node.clientapp`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from compliance.decisions import DecisionStore
from compliance.egress import CrossBorderCounter, MechanismRegistry
from compliance.fieldcrypt import FieldCipher, load_key_file
from compliance.joint_store import JointStore
from compliance.pia_service import PiaService
from compliance.portability_store import PortabilityStore
from compliance.prompts import PromptCounter
from compliance.pseudonyms import Keyring
from compliance.retention import Retention
from compliance.reviews import ReviewService, ReviewStore
from compliance.rights_service import RightsService
from compliance.service import ConsentService
from compliance.store import ComplianceStore
from federation.site import Site
from ledger import note
from ledger.storage import LedgerStore
from ledger.witness import Witness
from node.core.audit import NodeAudit
from node.core.auth import StaffKeys
from node.core.batching import GroupedConsent
from node.core.datadir import create_schemas, ensure_default_logs, load_signer, open_store, refuse_if_decommissioned
from node.core.settings import DATA_KEY_FILE, NodeSettings, load_settings
from node.core.tokens import MemberTokens
from node.exchange.destination import ExchangeDestination
from node.exchange.exchange_log import ExchangeLog
from node.exchange.linking import Linking, unlink_on_withdrawal
from node.exchange.links import LinkStore
from node.exchange.recovery import Recovery
from node.exchange.source import ExchangeSource
from node.exchange.store import DestinationSide, SourceSide
from node.learning.alignment import Alignment
from node.learning.rows import ChurnWindow
from node.learning.scoring import ChurnScoring
from node.learning.site import ConsentGatedLoader, node_site
from node.learning.store import NodeModelShelf
from node.learning.vertical_store import AlignmentStore, VerticalStore
from node.peers.joint import JointHandlers
from node.peers.nonces import PeerNonces
from node.peers.outbound import Outbound
from node.peers.portability import Portability
from node.peers.registry import RegistryFile
from node.peers.signing import PeerVerifier
from node.settlement.service import SettlementService
from node.wallet.loyalty import Loyalty
from node.wallet.purchases import Purchases
from node.wallet.store import WalletStore


@dataclass
class Node:
    """An open node: its settings, and every store and service built from them."""

    settings: NodeSettings

    @classmethod
    def open(cls, data_dir: Path, recover: bool = True, **overrides: object) -> Node:
        """Open the node in ``data_dir`` and make sure its schema and default logs exist.

        ``recover`` appends audit events a crash left staged: the serving process does it; a
        command run next to a live server must not, or it could append an event the server is
        about to append itself.
        """
        refuse_if_decommissioned(data_dir)  # its data key is gone: say so, not "data.key is missing"
        node = cls(load_settings(data_dir, **overrides))
        node.cipher  # noqa: B018  fail now, with a clear message, if data.key is missing
        create_schemas(node.store)
        if recover:
            node.audit.recover_outbox()
        ensure_default_logs(node.store, node.settings)
        return node

    # --- identity and storage ------------------------------------------------------------------

    @cached_property
    def signer(self) -> note.Signer:
        """The node's Ed25519 signer, read from its key file."""
        return load_signer(self.settings)

    @cached_property
    def store(self) -> LedgerStore:
        """The node's ledger store on its database."""
        return open_store(self.settings)

    @cached_property
    def cipher(self) -> FieldCipher:
        """Field-level encryption of member identifiers, with the key in ``data.key``."""
        return load_key_file(self.settings.data_dir / DATA_KEY_FILE)

    @cached_property
    def keyring(self) -> Keyring:
        """Members' pseudonym keys (crypto-shredding deletes them)."""
        return Keyring(self.store.engine, self.settings.node_id, self.cipher)

    @cached_property
    def registry(self) -> RegistryFile:
        """The alliance registry (``registry.toml``), read at its first use."""
        return RegistryFile(self.settings.registry_path)

    @cached_property
    def audit(self) -> NodeAudit:
        """The audit trail: ``node.audit(action, **fields)`` appends an event naming who acted."""
        pseudonym = lambda member_ref: self.keyring.pseudonym(member_ref, create=False)  # noqa: E731
        return NodeAudit(self.store.log("audit"), self.settings.node_id, self.signer, pseudonym)

    @cached_property
    def staff_keys(self) -> StaffKeys:
        """Staff API keys, stored hashed."""
        return StaffKeys(self.store.engine)

    @cached_property
    def member_tokens(self) -> MemberTokens:
        """Member tokens for the brand's app, each bound to one account (erasure or revocation ends it)."""
        return MemberTokens(self.store.engine, self.signer, self.keyring)

    @cached_property
    def witness(self) -> Witness:
        """This node acting as a witness of its peers' logs."""
        return Witness(self.signer, self.trusted_log_keys, self.store.witness_state())

    def trusted_log_keys(self, origin: str) -> list[note.Verifier]:
        """Keys trusted for ``origin``: a peer's key signs its logs, ``<peer node id>/<log name>``."""
        node_id, _, log_name = origin.partition("/")
        if not log_name or "/" in log_name:
            return []
        peer = next((p for p in self.settings.peers if p.node_id == node_id), None)
        return [note.Verifier.from_vkey(peer.vkey)] if peer else []

    # --- compliance ------------------------------------------------------------------------------

    @cached_property
    def consent(self) -> ConsentService:
        """Notices, consent and the gate, auditing into this node's ``audit`` log."""
        return ConsentService(
            ComplianceStore(self.store.engine, self.cipher),
            self.keyring,
            self.signer,
            self.audit,
            audit_batch=self.audit.many,
            current_actor=self.audit.current_actor,
            after_change=lambda records: (unlink_on_withdrawal(self.links)(records), self.joint.after_change(records)),
            alongside=lambda records: self.joint.alongside(records),  # notices owed to the other joint handlers
        )

    @cached_property
    def consent_changes(self) -> GroupedConsent:
        """Members' own consent changes (API and privacy centre), committed together under load."""
        return GroupedConsent(self.consent, self.audit)

    @cached_property
    def pia(self) -> PiaService:
        """Impact assessments and the feature switches they gate."""
        return PiaService(self.store.engine, self.audit)

    @cached_property
    def rights(self) -> RightsService:
        """Rights requests: access, correction, erasure (reaching the wallets, links and decisions too; the joint
        handlers' notices first, as they name the links the erasure of the others ends)."""
        held = self.retention.held
        adm = (self.decisions, ReviewStore(self.store.engine))  # automated decisions and their reviews
        return RightsService(
            self.consent,
            self.audit.about,
            lambda p: p in held(),
            sources=(self.joint, self.wallets, self.purchases, self.links, self.member_tokens, self.vertical, *adm,
                     PortabilityStore(self.store.engine, self.cipher)),
            after_erase=self.store.checkpoint_wal,  # no copy of the shredded key left in SQLite's WAL
            after_correct=self.joint.after_correct,
        )

    @cached_property
    def joint(self) -> JointHandlers:
        """This node as one of the joint handlers of the alliance's joint purposes (PIPL Art. 20)."""
        return JointHandlers(self.settings.node_id, self.registry, JointStore(self.store.engine), self.links,
                             self.consent, self.outbound, self.audit, AlignmentStore(self.store.engine))

    @cached_property
    def portability(self) -> Portability:
        """Members' data sent to, or received from, a brand they name (PIPL Art. 45(3))."""
        return Portability(self.settings.node_id, self.registry, self.rights, self.consent,
                           PortabilityStore(self.store.engine, self.cipher), self.outbound, self.audit)

    @cached_property
    def decisions(self) -> DecisionStore:
        """Automated decisions about members as made: inputs, result, factors, model (PIPL Art. 24)."""
        return DecisionStore(self.store.engine)

    @cached_property
    def reviews(self) -> ReviewService:
        """Human review of automated decisions: members' contests, the staff queue, verdicts."""
        return ReviewService(self.rights, self.decisions, ReviewStore(self.store.engine))

    @cached_property
    def retention(self) -> Retention:
        """Legal holds and the retention purge."""
        return Retention(self.store.engine, self.keyring.live, self.audit, after_purge=self.store.checkpoint_wal)

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

    # --- peers ----------------------------------------------------------------------------------

    @cached_property
    def outbound(self) -> Outbound:
        """The node's only way out: every outbound call is authorised here first."""
        return Outbound(
            self.settings, self.registry, self.signer, self.consent, self.pia, self.xborder, self.mechanisms, self.audit
        )

    @cached_property
    def peer_verifier(self) -> PeerVerifier:
        """Authenticates calls from other brands' nodes; their nonces are kept in the database."""
        return PeerVerifier(lambda node_id: self.registry.brand(node_id).verifier, PeerNonces(self.store.engine))

    # --- wallets and exchange --------------------------------------------------------------------

    @cached_property
    def wallets(self) -> WalletStore:
        """Members' points wallets (keyed by pseudonym)."""
        return WalletStore(self.store.engine)

    @cached_property
    def loyalty(self) -> Loyalty:
        """Earning on purchases, wallet views and tiers."""
        s = self.settings
        return Loyalty(self.consent, self.wallets, self.purchases, s.points_per_yuan, s.points_expiry_months)

    @cached_property
    def purchases(self) -> Purchases:
        """Purchases that earned points, each id once per brand."""
        return Purchases(self.wallets)

    @cached_property
    def links(self) -> LinkStore:
        """Link codes and pairwise links of members with partner brands."""
        return LinkStore(self.store.engine, self.cipher)

    @cached_property
    def linking(self) -> Linking:
        """Linking a member's accounts across brands over signed calls."""
        return Linking(self.registry, self.consent, self.links, self.outbound, self.audit)

    @cached_property
    def exchange_log(self) -> ExchangeLog:
        """Committed exchanges on the ``exchange`` log, as source or destination."""
        return ExchangeLog(self.store.log("exchange"), self.signer, self.outgoing, self.incoming)

    @cached_property
    def outgoing(self) -> SourceSide:
        """The records of exchanges leaving this node."""
        return SourceSide(self.wallets)

    @cached_property
    def incoming(self) -> DestinationSide:
        """The records of exchanges arriving at this node."""
        return DestinationSide(self.wallets)

    @cached_property
    def exchange_source(self) -> ExchangeSource:
        """Members' exchanges to other brands: quotes, the hold, driving each to its end."""
        return ExchangeSource(
            self.settings.node_id,
            self.registry,
            self.signer,
            self.consent,
            self.pia,
            self.links,
            self.outgoing,
            self.outbound,
            self.exchange_log,
            batch_max=self.settings.exchange_batch_max,
            batch_linger=self.settings.exchange_batch_linger_ms / 1000,
        )

    @cached_property
    def exchange_destination(self) -> ExchangeDestination:
        """Answers to other brands' credit and cancel calls."""
        return ExchangeDestination(
            self.settings.node_id,
            self.registry,
            self.signer,
            self.consent,
            self.pia,
            self.links,
            self.incoming,
            self.exchange_log,
            self.audit,
            self.settings.points_expiry_months,
        )

    @cached_property
    def exchange_recovery(self) -> Recovery:
        """Finishing what a crash or an unreachable peer left open."""
        return Recovery(self.exchange_source, self.outgoing, self.incoming, self.exchange_log, self.joint.deliver)

    @cached_property
    def settlement(self) -> SettlementService:
        """Settlement statements, log reconciliation with peers, liability."""
        return SettlementService(
            self.settings.node_id,
            self.signer,
            self.registry,
            self.store.log("exchange"),
            self.outbound,
            self.wallets,
        )

    # --- learning --------------------------------------------------------------------------------

    def model_shelf(self) -> NodeModelShelf:
        """The global models this node received and the blends it serves."""
        return NodeModelShelf(self.store.engine)

    @cached_property
    def churn_scoring(self) -> ChurnScoring:
        """Churn scores from the model the node serves, behind the personalization gate."""
        return ChurnScoring(
            self.consent,
            self.pia,
            self.wallets,
            self.model_shelf(),
            self.audit,
            self.settings.points_per_yuan,
            cross_brand=self.vertical,
            decisions=self.decisions,
            reviews=self.reviews,
        )

    @cached_property
    def vertical(self) -> VerticalStore:
        """Cross-brand (vertical) runs this node took part in, and its members' scores from them."""
        return VerticalStore(self.store.engine)

    @cached_property
    def alignment(self) -> Alignment:
        """Private set intersection with other brands' nodes over signed peer calls."""
        return Alignment(
            self.settings.node_id,
            self.consent,
            self.outbound,
            self.audit,
            AlignmentStore(self.store.engine),
            max_points=self.settings.psi_max_points,
        )

    def learning_site(self, window: ChurnWindow) -> tuple[Site, ConsentGatedLoader]:
        """This node as a federated site for ``window``, behind its consent-gated loader."""
        return node_site(
            self.settings.node_id,
            self.store.engine,
            self.consent,
            self.wallets,
            self.pia,
            self.audit,
            self.settings.points_per_yuan,
            window,
        )

    def dispose(self) -> None:
        """Close the database connections and the outbound HTTP client."""
        if "outbound" in self.__dict__:
            self.outbound.close()
        if "store" in self.__dict__:
            self.store.close()
