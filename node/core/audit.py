"""The node's audit trail as its services use it: events that name who acted, appended to the ``audit`` log.

Services receive the :class:`NodeAudit` (or just its :meth:`NodeAudit.many`) and call it like a
function: ``audit("link.created", subject_pseudo_ids=[...])``. The actor is whoever the current
request acts for (:data:`node.core.auth.current_caller`), a member only by their pseudonym, or the
node itself outside a request.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable
from typing import Any, BinaryIO

from compliance import outbox
from compliance.audit import AuditEvent, AuditFilter, AuditTrail, decode_entry
from compliance.audit_bundle import BundleManifest, export_bundle
from compliance.audit_index import AuditIndex
from ledger import note
from ledger.storage import Log
from node.core.auth import Role, current_caller


class NodeAudit:
    """Appends audit events for one node; call it with an action and the event's fields."""

    def __init__(self, log: Log, node_id: str, signer: note.Signer, pseudonym_of: Callable[[str], str]) -> None:
        self.log = log
        self.node_id = node_id
        self.signer = signer
        # members appear in the audit trail as pseudonyms, never by their brand reference
        self.pseudonym_of = pseudonym_of
        #: denied events appended by this process, by (action, purpose, reason): what /metrics reports
        self.denials: Counter[tuple[str, str, str]] = Counter()
        self.denials_lock = threading.Lock()

    def __call__(self, action: str, **fields: Any) -> int:
        """Append one event; return its index in the ``audit`` log."""
        return self.many([(action, fields)])

    def many(self, events: list[tuple[str, dict[str, Any]]]) -> int:
        """Append several events in one atomic batch; return the first one's index.

        The actor is whoever the current request acts for, unless an event names its own (an
        event staged in the outbox keeps the actor of the request that staged it).
        """
        # only when an event does not name its own: finding the actor may read the member's pseudonym
        actor = self.current_actor() if any("actor" not in f for _, f in events) else None
        batch = [AuditEvent(node_id=self.node_id, action=a, **({"actor": actor} | f)) for a, f in events]
        first = AuditTrail(self.log, self.node_id).record_many(batch)
        denied = [
            (a, str(f.get("purpose_code") or ""), str(f.get("reason_code") or ""))
            for a, f in events
            if f.get("outcome") == "denied"
        ]
        if denied:
            with self.denials_lock:
                self.denials.update(denied)
        return first

    def current_actor(self) -> dict[str, str]:
        """Who the current request acts for, as an audit event's ``actor``."""
        caller = current_caller.get()
        if caller is None:
            return {"type": "service", "id": self.node_id, "role": "node"}
        if caller.role is Role.MEMBER:
            return {"type": "member", "id": self.pseudonym_of(caller.id), "role": caller.role.value}
        return {"type": "staff", "id": caller.id, "role": caller.role.value}

    def about(self, pseudonym: str) -> list[dict[str, Any]]:
        """Every event naming ``pseudonym`` as subject or actor (through the pseudonym index)."""
        index = AuditIndex(self.log.store.engine, self.log)
        return [{"index": i, **e.model_dump(mode="json")} for i, e in index.about(pseudonym)]

    def recover_outbox(self) -> int:
        """Append staged events a crash left behind (each exactly once); return how many."""

        def logged(staged: list[dict[str, Any]]) -> set[str]:
            wanted = {f["event_id"] for f in staged}
            if all(f.get("subject_pseudo_ids") for f in staged):  # the index finds them by subject
                index = AuditIndex(self.log.store.engine, self.log)
                subjects = {p for f in staged for p in f["subject_pseudo_ids"]}
                return {e.event_id for p in subjects for _, e in index.about(p)} & wanted
            trail = AuditTrail(self.log, self.node_id)
            return {e.event_id for _, e in trail.events() if e.event_id in wanted}

        return outbox.recover(self.log.store.engine, logged, self.many)

    def select(self, flt: AuditFilter, keep: int | None = None) -> list[tuple[int, AuditEvent]]:
        """The events ``flt`` selects, oldest first (the newest ``keep`` of them): through the indexes
        when the filter names a member, an action or a time, else by reading the whole log."""
        found = AuditIndex(self.log.store.engine, self.log).candidates(flt, self.log.size)
        if found is None:
            tail: deque[tuple[int, AuditEvent]] = deque(maxlen=keep)
            tail.extend((i, e) for i, e in AuditTrail(self.log, self.node_id).events() if flt.matches(e))
            return list(tail)
        chosen: list[tuple[int, AuditEvent]] = []
        for i in reversed(found):  # newest first, so that `keep` stops the reading early
            event = decode_entry(i, self.log.entry(i).data)
            if flt.matches(event):
                chosen.append((i, event))
                if len(chosen) == keep:
                    break
        return chosen[::-1]

    def export(self, flt: AuditFilter, out: BinaryIO, progress: Callable[[int], None] | None = None) -> BundleManifest:
        """Write an audit bundle for ``flt`` and record the export itself in the audit trail.

        The caller keeps the bundle only if this returns: the export is audited first.
        """
        index = AuditIndex(self.log.store.engine, self.log)
        manifest = export_bundle(
            self.log, self.signer, flt, out, progress=progress, candidates=lambda size: index.candidates(flt, size)
        )
        details: dict[str, str | int | None] = {f"filter.{k}": v for k, v in flt.to_dict().items()}
        details |= {"count": manifest.count, "tree_size": manifest.tree_size, "events_sha256": manifest.events_sha256}
        self(
            "audit.export",
            subject_pseudo_ids=[flt.subject] if flt.subject else [],
            record_count=manifest.count,
            details=details,
        )
        return manifest
