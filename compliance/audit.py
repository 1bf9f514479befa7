"""The PIPL audit trail: typed audit events on the node's ``audit`` ledger log, and filters over them.

An :class:`AuditEvent` carries the fields of the checklist's AuditEvent (section 2) that make
sense without HTTP. The ones it leaves out are provided by the ledger instead: ``seq`` is the
entry's ledger index, ``prev_hash``/``entry_hash`` are the Merkle tree (RFC 6962 leaf hash and
inclusion proofs), ``node_sig`` is the node's signed checkpoint, and ``brand_id`` is ``node_id``.

Encoding: one ledger entry per event, holding the event's canonical JSON
(:func:`ledger.canonical.canonical_json`: keys sorted, compact separators, ASCII only with
``\\uXXXX`` escapes, no NaN or infinity): every field present (absent values as ``null``), and
times as ISO 8601 UTC with microseconds and a ``Z`` (``2026-11-01T08:00:00.000000Z``).
:meth:`AuditEvent.from_bytes` accepts only bytes that are exactly that encoding, so one event
has exactly one byte form and one leaf hash.

Privacy: subjects appear only as keyed pseudonyms (:mod:`compliance.pseudonyms`, 32 lowercase
hex characters); anything else in ``subject_pseudo_ids``, or as the id of a ``member`` actor,
is refused, so a raw member reference, phone number or e-mail cannot reach the append-only log.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from compliance.purposes import LegalBasis
from ledger.canonical import canonical_json

if TYPE_CHECKING:  # verifying a bundle must not pay for importing the database layer
    from ledger.storage import Log

#: Every action an audit event may record (PIPL checklist section 2, plus the node's own).
ACTIONS: frozenset[str] = frozenset(
    {
        "consent.grant",
        "consent.withdraw",
        "consent.renew",
        "notice.publish",
        "pi.read",
        "pi.export",
        "pi.update",
        "pi.delete",
        "pi.anonymize",
        "pi.provide",
        "pi.receive",
        "pi.provide.denied",
        "xborder.transfer",
        "xborder.block",
        "fl.align",
        "fl.round.start",
        "fl.round.contribute",
        "fl.round.exclude",
        "dp.budget_spend",
        "adm.decide",
        "adm.explain",
        "adm.optout",
        "adm.human_review",
        "dsr.received",
        "dsr.verified",
        "dsr.completed",
        "dsr.refused",
        "dsr.escalated",
        "exchange.refused",
        "link.created",
        "retention.purge",
        "incident.detected",
        "incident.notified",
        "pia.submitted",
        "pia.approved",
        "feature.enable",
        "feature.disable",
        "audit.export",
        "key.create",
        "key.rotate",
        "config.change",
        "staff.login",
        "gate.denied",
    }
)
LEGAL_BASES: frozenset[str] = frozenset(b.value for b in LegalBasis)
PSEUDONYM = re.compile(r"[0-9a-f]{32}")  # compliance.pseudonyms.pseudonym_of: 128 bits, lowercase hex
MAX_EVENT_BYTES = 64 * 1024
MAX_DETAILS = 32
MAX_LIST = 1000

Text = Annotated[str, StringConstraints(min_length=1, max_length=200)]
DetailValue = str | int | Annotated[float, Field(allow_inf_nan=False)] | bool | None


class AuditEventError(ValueError):
    """Bytes that are not the canonical encoding of a valid audit event, or a log entry that is not one."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


def format_ts(ts: datetime) -> str:
    """A time as canonical ISO 8601 UTC: ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    return ts.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _utc(ts: datetime) -> datetime:
    return ts.astimezone(UTC)


def check_pseudonym(value: str, what: str = "pseudonym") -> str:
    """Return ``value`` if it is a member pseudonym, else raise ``ValueError`` (raw identifiers stay out)."""
    if not isinstance(value, str) or not PSEUDONYM.fullmatch(value):
        raise ValueError(f"{what} must be a member pseudonym (32 lowercase hex characters), not a raw identifier")
    return value


def _now() -> datetime:
    return datetime.now(UTC)


def _event_id() -> str:
    return uuid.uuid4().hex


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Actor(_Frozen):
    """Who did it: a member (by pseudonym), a staff member, a service or a peer node."""

    type: Literal["member", "staff", "service", "peer_node"]
    id: Text
    role: Text

    @model_validator(mode="after")
    def _members_by_pseudonym(self) -> Actor:
        if self.type == "member":
            check_pseudonym(self.id, "a member actor's id")
        return self


class Recipient(_Frozen):
    """Who received personal information, in which PIPL role, under which contract."""

    id: Text
    role: Literal["independent", "joint", "entrusted"] | None = None  # PIPL Art. 23 / 20 / 21
    contract_id: Text | None = None


class AuditEvent(_Frozen):
    """One audit event (PIPL checklist section 2). Immutable; see the module for its encoding."""

    event_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")] = Field(default_factory=_event_id)
    ts_utc: AwareDatetime = Field(default_factory=_now)
    node_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,200}$")]
    actor: Actor
    action: str
    subject_pseudo_ids: tuple[str, ...] = Field(default=(), max_length=MAX_LIST)
    subject_count: int | None = Field(default=None, ge=0)
    purpose_code: Text | None = None
    legal_basis: str | None = None
    consent_ids: tuple[Text, ...] = Field(default=(), max_length=MAX_LIST)
    pi_categories: tuple[Text, ...] = Field(default=(), max_length=100)
    record_count: int | None = Field(default=None, ge=0)
    recipient: Recipient | None = None
    outcome: Literal["ok", "denied", "error"] = "ok"
    reason_code: Text | None = None
    request_id: Text | None = None
    dsr_id: Text | None = None
    retention_class: Literal["6m", "3y", "legal_hold"] = "3y"
    details: dict[Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")], DetailValue] = Field(
        default_factory=dict
    )

    @field_validator("ts_utc")
    @classmethod
    def _to_utc(cls, v: datetime) -> datetime:
        return _utc(v)

    @field_serializer("ts_utc", when_used="json")
    def _ts_text(self, v: datetime) -> str:
        return format_ts(v)

    @field_validator("action")
    @classmethod
    def _known_action(cls, v: str) -> str:
        if v not in ACTIONS:
            raise ValueError(f"unknown audit action {v[:60]!r}: see compliance.audit.ACTIONS")
        return v

    @field_validator("subject_pseudo_ids")
    @classmethod
    def _pseudonyms_only(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for i, p in enumerate(v):
            check_pseudonym(p, f"subject_pseudo_ids[{i}]")
        return v

    @field_validator("legal_basis")
    @classmethod
    def _known_basis(cls, v: str | None) -> str | None:
        if v is not None and v not in LEGAL_BASES:
            raise ValueError(f"unknown legal basis {v[:60]!r}: one of {', '.join(sorted(LEGAL_BASES))}")
        return v

    @field_validator("details")
    @classmethod
    def _small_details(cls, v: dict[str, DetailValue]) -> dict[str, DetailValue]:
        if len(v) > MAX_DETAILS:
            raise ValueError(f"details holds at most {MAX_DETAILS} keys")
        for key, value in v.items():
            if isinstance(value, str) and len(value) > 1000:
                raise ValueError(f"details[{key!r}] is longer than 1000 characters")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> AuditEvent:
        if self.subject_count is not None and self.subject_count < len(self.subject_pseudo_ids):
            raise ValueError("subject_count is smaller than the number of subject_pseudo_ids")
        if len(self.to_bytes()) > MAX_EVENT_BYTES:
            raise ValueError(f"an audit event is at most {MAX_EVENT_BYTES} bytes encoded")
        return self

    def to_bytes(self) -> bytes:
        """The canonical JSON encoding: the exact bytes of this event's ledger entry."""
        return canonical_json(self.model_dump(mode="json"))

    @classmethod
    def from_bytes(cls, data: bytes) -> AuditEvent:
        """Decode an event, insisting that ``data`` is its canonical encoding (else :class:`AuditEventError`)."""
        try:
            obj = json.loads(data, parse_constant=_no_constants)
        except (ValueError, RecursionError) as exc:
            raise AuditEventError("not a JSON object") from exc
        return cls.from_json_object(obj, data)

    @classmethod
    def from_json_object(cls, obj: Any, data: bytes | None = None) -> AuditEvent:
        """Validate a parsed JSON object; if ``data`` is given it must be the object's canonical encoding."""
        if not isinstance(obj, dict):
            raise AuditEventError("not a JSON object")
        try:
            event = cls.model_validate(obj)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "event"
            raise AuditEventError(
                f"invalid audit event: {where}: {first['msg'].removeprefix('Value error, ')}"
            ) from exc
        if data is not None and event.to_bytes() != data:
            raise AuditEventError("audit event bytes are not in canonical form")
        return event


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class AuditTrail:
    """The audit events of one node, kept in a ledger log (normally the node's ``audit`` log)."""

    def __init__(self, log: Log, node_id: str) -> None:
        self.log = log
        self.node_id = node_id

    def _encode(self, event: AuditEvent) -> bytes:
        if not isinstance(event, AuditEvent):
            raise TypeError("the audit trail records AuditEvent objects")
        if event.node_id != self.node_id:
            raise ValueError(f"event of node {event.node_id!r} does not belong in the trail of {self.node_id!r}")
        data = event.to_bytes()
        AuditEvent.from_bytes(data)  # revalidates: model_copy(update=...) skips validation
        return data

    def record(self, event: AuditEvent) -> int:
        """Append one event; return its ledger index."""
        return self.log.append([self._encode(event)]).first_index

    def record_many(self, events: Iterable[AuditEvent]) -> int:
        """Append events as one atomic batch (all or none, in order); return the first one's index."""
        data = [self._encode(e) for e in events]
        if not data:
            raise ValueError("record_many needs at least one event")
        return self.log.append(data).first_index

    def events(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, AuditEvent]]:
        """Yield ``(index, event)`` for the entries ``[start, end)``; an entry that is not a
        canonical audit event raises :class:`AuditEventError` naming its index."""
        for entry in self.log.entries(start, end):
            yield entry.index, decode_entry(entry.index, entry.data)


def decode_entry(index: int, data: bytes) -> AuditEvent:
    """The audit event held by ledger entry ``index``, or :class:`AuditEventError` naming the index."""
    try:
        return AuditEvent.from_bytes(data)
    except AuditEventError as exc:
        raise AuditEventError(f"ledger entry {index} is not an audit event: {exc}", index) from exc


class AuditFilter(_Frozen):
    """Which events a compliance officer asks for; every criterion given must hold (AND).

    - ``from_ts`` inclusive, ``to_ts`` exclusive: an event matches when ``from_ts <= ts_utc < to_ts``.
    - ``action``: an exact action (``consent.grant``), or a prefix ending in ``.`` (``consent.``)
      that matches every action starting with it. Either must be able to match a known action.
      Several, separated by commas, match any of them (``pi.provide,xborder.transfer``: the
      records of provision).
    - ``purpose``: an exact purpose code, or a family ending in ``:`` (``points_exchange:``) that
      matches every code starting with it.
    - ``subject``: a member pseudonym; it matches events listing it in ``subject_pseudo_ids``
      and events whose actor is that member.
    - ``recipient``: the exact ``recipient.id``.
    """

    from_ts: AwareDatetime | None = None
    to_ts: AwareDatetime | None = None
    action: Text | None = None
    purpose: Text | None = None
    subject: str | None = None
    recipient: Text | None = None

    @field_validator("from_ts", "to_ts")
    @classmethod
    def _to_utc(cls, v: datetime | None) -> datetime | None:
        return None if v is None else _utc(v)

    @field_validator("action")
    @classmethod
    def _can_match(cls, v: str | None) -> str | None:
        if v is None:
            return v
        for part in v.split(","):
            if part.endswith(".") and not any(a.startswith(part) for a in ACTIONS):
                raise ValueError(f"no audit action starts with {part!r}")
            if not part.endswith(".") and part not in ACTIONS:
                raise ValueError(
                    f"unknown audit action {part!r} (end it with '.' to select a family, e.g. 'consent.')"
                )
        return v

    @property
    def actions(self) -> tuple[str, ...]:
        """The action criterion's alternatives: exact actions and families ending in ``.``."""
        return tuple(self.action.split(",")) if self.action else ()

    @field_validator("subject")
    @classmethod
    def _pseudonym(cls, v: str | None) -> str | None:
        return None if v is None else check_pseudonym(v, "subject")

    @model_validator(mode="after")
    def _range(self) -> AuditFilter:
        if self.from_ts is not None and self.to_ts is not None and self.from_ts >= self.to_ts:
            raise ValueError("from_ts must be before to_ts (from is inclusive, to exclusive)")
        return self

    def matches(self, event: AuditEvent) -> bool:
        """Whether ``event`` satisfies every criterion of this filter."""
        if self.from_ts is not None and event.ts_utc < self.from_ts:
            return False
        if self.to_ts is not None and event.ts_utc >= self.to_ts:
            return False
        if self.action is not None and not any(_same_or_under(event.action, a, ".") for a in self.actions):
            return False
        if self.purpose is not None and (
            event.purpose_code is None or not _same_or_under(event.purpose_code, self.purpose, ":")
        ):
            return False
        if self.subject is not None and not self._about_subject(event):
            return False
        return self.recipient is None or (event.recipient is not None and event.recipient.id == self.recipient)

    def _about_subject(self, event: AuditEvent) -> bool:
        by_member = event.actor.type == "member" and event.actor.id == self.subject
        return by_member or self.subject in event.subject_pseudo_ids

    def to_dict(self) -> dict[str, str | None]:
        """Every criterion (``None`` when not set), times in canonical UTC form: the manifest's ``filter``."""
        return {
            "action": self.action,
            "from_ts": None if self.from_ts is None else format_ts(self.from_ts),
            "purpose": self.purpose,
            "recipient": self.recipient,
            "subject": self.subject,
            "to_ts": None if self.to_ts is None else format_ts(self.to_ts),
        }

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> AuditFilter:
        """The filter :meth:`to_dict` gave, insisting on exactly that form (else ``ValueError``)."""
        if not isinstance(obj, Mapping) or set(obj) != FILTER_KEYS:
            raise ValueError(f"a filter has exactly the keys {', '.join(sorted(FILTER_KEYS))}")
        if any(v is not None and not isinstance(v, str) for v in obj.values()):
            raise ValueError("filter values are strings or null")
        flt = cls.model_validate(dict(obj))
        if flt.to_dict() != dict(obj):
            raise ValueError("filter is not in canonical form")
        return flt


FILTER_KEYS = frozenset(AuditFilter.model_fields)


def _same_or_under(value: str, wanted: str, sep: str) -> bool:
    return value.startswith(wanted) if wanted.endswith(sep) else value == wanted
