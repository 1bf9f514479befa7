"""Consent operations and the gate every data path calls. No HTTP here: routers call these.

Every consent change and every refusal goes to the audit trail through an ``AuditSink``; every
grant or withdrawal returns a signed receipt.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol

from compliance import consent as consent_mod
from compliance import outbox
from compliance.consent import ConsentAction, Decision, Reason
from compliance.notices import PIPO_THRESHOLD, Notice, NoticeError
from compliance.phones import PhoneError, normalise_phone
from compliance.pseudonyms import Keyring, MemberErasedError
from compliance.purposes import PurposeError, catalogue
from compliance.receipts import build_receipt, sign_receipt
from compliance.store import ComplianceStore
from ledger import note


class AuditSink(Protocol):
    """Where compliance events go (the node's ``audit`` log)."""

    def __call__(self, action: str, **fields: Any) -> None:
        """Record one event."""
        ...


class ConsentDenied(Exception):
    """A use of a member's data that the member's consent does not allow (HTTP 403)."""

    def __init__(self, purpose_code: str, reason: Reason, recipient: str | None = None) -> None:
        target = f" to {recipient}" if recipient else ""
        super().__init__(f"no valid consent for {purpose_code}{target}: {reason.value}")
        self.purpose_code = purpose_code
        self.reason = reason
        self.recipient = recipient


class GuardianRequiredError(ValueError):
    """A member under 14 registered without a guardian (HTTP 422)."""


class BirthDateError(ValueError):
    """A birth date no member can have: in the future, or before 1900 (``birth_date_out_of_range``)."""

    reason = "birth_date_out_of_range"


#: The earliest birth date accepted: anything older is a typo (and year 1 breaks date arithmetic).
EARLIEST_BIRTH = date(1900, 1, 1)


def check_birth_date(birth_date: date | None, today: date) -> None:
    """Refuse a birth date in the future or before 1900; without one there is nothing to check."""
    if birth_date is not None and not EARLIEST_BIRTH <= birth_date <= today:
        raise BirthDateError(f"a birth date lies between {EARLIEST_BIRTH} and today, not {birth_date.isoformat()}")


class UnknownMemberError(LookupError):
    """The member reference is not registered at this node (HTTP 404)."""


@dataclass(frozen=True)
class ConsentChange:
    """One member's grant, withdrawal or renewal of some purposes."""

    member_ref: str
    purposes: tuple[str, ...]
    action: ConsentAction
    actor: str = "self"
    collection_method: str = "api"
    expires_at: datetime | None = None
    #: the audit events' actor (the request that asked, when changes are gathered from many requests);
    #: None: whoever the current request acts for
    audit_actor: dict[str, str] | None = None


@dataclass
class ConsentService:
    """Members' consents: grant, withdraw, renew, state; notices; the gate."""

    store: ComplianceStore
    keyring: Keyring
    signer: note.Signer
    audit: AuditSink
    audit_batch: Callable[[list[tuple[str, dict[str, Any]]]], None] | None = None  # one append for many events
    current_actor: Callable[[], dict[str, str]] | None = None  # staged events keep who acted
    after_change: Callable[[list[consent_mod.ConsentRecord]], None] | None = None  # e.g. unlink on withdrawal
    # what else the change's transaction writes, given its records (the notices owed to joint handlers)
    alongside: Callable[[list[consent_mod.ConsentRecord]], Callable[[Any], object] | None] | None = None
    minors_in: frozenset[str] = frozenset({"loyalty.core"})  # PIPL Art. 31: keep minors out of the rest

    # --- notices --------------------------------------------------------------------------

    def publish_notice(self, notice: Notice) -> Notice:
        """Publish the next notice version; its version must follow the current one."""
        current = self.current_notice_or_none()
        expected = 1 if current is None else current.version + 1
        if notice.version != expected:
            raise NoticeError(f"the next notice version is {expected}, not {notice.version}")
        if not notice.handler.pipo_contact and self.store.member_count() >= PIPO_THRESHOLD:
            raise NoticeError(
                f"this node has {PIPO_THRESHOLD:,} or more members: the notice must publish the PI protection "
                "officer's contact (handler.pipo_contact, PIPL Art. 52)"
            )
        self.store.add_notice(notice)
        widened = sorted(notice.widened_purposes(current)) if current else []
        self.audit(
            "notice.publish",
            details={"version": notice.version, "sha256": notice.sha256(), "renewal_needed_for": ",".join(widened)},
        )
        return notice

    def current_notice_or_none(self) -> Notice | None:
        """The newest published notice, if any."""
        notices = self.store.notices()
        return notices[max(notices)] if notices else None

    def current_notice(self) -> Notice:
        """The newest published notice; a clear error before the first one."""
        notice = self.current_notice_or_none()
        if notice is None:
            raise NoticeError("no privacy notice is published yet: publish one before collecting consent")
        return notice

    # --- members --------------------------------------------------------------------------

    def register_member(self, member_ref: str, birth_date: date | None = None, guardian_ref: str | None = None) -> str:
        """Register a member; return their pseudonym. Under-14s must name a guardian."""
        check_birth_date(birth_date, datetime.now(UTC).date())
        if consent_mod.is_minor(birth_date, datetime.now(UTC).date()) and not guardian_ref:
            raise GuardianRequiredError("a member under 14 needs a guardian (PIPL Art. 31)")
        self.store.add_member(member_ref, birth_date, guardian_ref)
        return self.keyring.pseudonym(member_ref)

    def register_members(self, members: Sequence[tuple[str, date | None, str | None]]) -> dict[str, str]:
        """Register many members at once (bulk onboarding); return their pseudonyms."""
        today = datetime.now(UTC).date()
        for ref, born, guardian in members:
            check_birth_date(born, today)
            if consent_mod.is_minor(born, today) and not guardian:
                raise GuardianRequiredError(f"member {ref!r} is under 14 and needs a guardian (PIPL Art. 31)")
        self.store.add_members(list(members))
        return self.keyring.pseudonyms([ref for ref, _, _ in members])

    def member_pseudonym(self, member_ref: str) -> str:
        """The pseudonym of a registered member (404-style error if unknown, 410 if erased)."""
        return self._registered(member_ref)[0]

    def member_pseudonyms(self, member_refs: Sequence[str]) -> dict[str, str | LookupError]:
        """Each member's pseudonym, or why there is none (not registered; erased), in two reads for all."""
        unique = list(dict.fromkeys(member_refs))
        registered = self.store.members(unique)
        keys = self.keyring.pseudonyms([m for m in unique if m in registered], create=False, skip_missing=True)
        out: dict[str, str | LookupError] = {}
        for m in unique:
            if m not in registered:
                out[m] = UnknownMemberError(f"member {m!r} is not registered here")
            else:
                out[m] = keys.get(m) or MemberErasedError(f"member {m!r} was erased")
        return out

    def _registered(self, member_ref: str) -> tuple[str, bool]:
        """(pseudonym, is a minor) of a registered member, from one read of their record."""
        record = self.store.member(member_ref)
        if record is None:
            raise UnknownMemberError(f"member {member_ref!r} is not registered here")
        minor = consent_mod.is_minor(record.birth_date, datetime.now(UTC).date())
        return self.keyring.pseudonym(member_ref, create=False), minor

    def _minor(self, member_ref: str) -> bool:
        m = self.store.member(member_ref)
        return m is not None and consent_mod.is_minor(m.birth_date, datetime.now(UTC).date())

    # --- the shared identifier -------------------------------------------------------------

    def set_phone(self, member_ref: str, phone: str | None) -> str | None:
        """Record the member's phone number in E.164 form (:class:`PhoneError` if it is not a valid
        number), or remove it with ``None``; audited as an update of the member's data. Returns what
        is stored. Registering a number shares nothing: only a cross-brand consent does."""
        return self.set_phones([(member_ref, phone)])[0]

    def set_phones(self, phones: Sequence[tuple[str, str | None]], skip_gone: bool = False) -> list[str | None]:
        """:meth:`set_phone` for many members (bulk onboarding): every number is checked before any
        is stored, then all are stored in one transaction and audited in one append. ``skip_gone``
        leaves out members no longer registered (erased since the list was made) instead of refusing."""
        if skip_gone:  # two reads for everyone rather than two per member
            index, keys, registered = self.store.cipher.index, self.keyring.by_index(), set(self.store.birth_dates())
            phones = [(ref, phone) for ref, phone in phones if index(ref) in registered and index(ref) in keys]
            pseudonyms = [keys[index(ref)] for ref, _ in phones]
        else:
            pseudonyms = [self.member_pseudonym(ref) for ref, _ in phones]
        normal = []
        for ref, phone in phones:
            try:
                normal.append(normalise_phone(phone) if phone is not None else None)
            except PhoneError as exc:
                raise PhoneError(f"{ref}: {exc}" if len(phones) > 1 else str(exc)) from exc
        self.store.set_phones(zip((ref for ref, _ in phones), normal, strict=True))
        events = [
            (
                "pi.update",
                {
                    "subject_pseudo_ids": pseudonyms[i : i + 1000],
                    "subject_count": len(pseudonyms),
                    "details": {"field": "phone", "removed": all(n is None for n in normal[i : i + 1000])},
                },
            )
            for i in range(0, len(pseudonyms), 1000)
        ]
        if self.audit_batch is not None:
            self.audit_batch(events)
        else:
            for action, fields in events:
                self.audit(action, **fields)
        return normal

    def cross_brand_cohort(self, partner: str) -> dict[str, str]:
        """Who may enter a cross-brand run with ``partner`` now, pseudonym -> phone number: members with
        ``joint_modeling`` and ``joint_modeling:<partner>`` consent, not minors, not erased, with a phone
        number on record. Read at the start of every run, so a withdrawal counts from the next one."""
        allowed = set(self.cohort("joint_modeling")) & set(self.cohort(f"joint_modeling:{partner}"))
        by_index = self.keyring.by_index()
        phones = self.store.phones()
        # a number two members gave identifies neither of them: both are left out (nobody is aligned on
        # a number someone else also claims)
        held = Counter(phones.values())
        return {by_index[i]: p for i, p in phones.items() if by_index.get(i) in allowed and held[p] == 1}

    # --- consent --------------------------------------------------------------------------

    def change(
        self,
        member_ref: str,
        purpose_codes: Sequence[str],
        action: ConsentAction,
        *,
        actor: str = "self",
        collection_method: str = "api",
        expires_at: datetime | None = None,
    ) -> str:
        """Grant, withdraw or renew purposes (one record each, never bundled); return the signed receipt."""
        [receipt] = self.change_many(
            [ConsentChange(member_ref, tuple(purpose_codes), action, actor, collection_method, expires_at)]
        )
        return receipt

    def change_many(
        self, changes: Sequence[ConsentChange], also: Callable[[Any], object] | None = None
    ) -> list[str]:
        """Apply many members' consent changes in one transaction and one audit batch; one receipt each.
        ``also`` writes in that transaction too (given its connection): a record that must not outlive
        the change, nor the change it."""
        notice = self.current_notice()
        cat = catalogue()
        refs = [c.member_ref for c in changes]
        registered = self.store.members(refs)  # one read for the whole batch, not one per member
        unknown = [r for r in refs if r not in registered]
        if unknown:
            raise UnknownMemberError(f"member {unknown[0]!r} is not registered here")
        pseudonyms = self.keyring.pseudonyms(refs, create=False)
        today = datetime.now(UTC).date()
        prepared: list[tuple[list[consent_mod.ConsentRecord], str]] = []
        events: list[tuple[str, dict[str, Any]]] = []
        for c in changes:
            if not c.purposes:
                raise PurposeError("name at least one purpose")
            member = pseudonyms[c.member_ref]
            purposes = [cat.purpose(code) for code in dict.fromkeys(c.purposes)]
            minor = consent_mod.is_minor(registered[c.member_ref].birth_date, today)
            if c.action is not ConsentAction.WITHDRAW and not c.actor.startswith("guardian:") and minor:
                raise PermissionError("a member under 14 cannot consent alone: their guardian must (PIPL Art. 31)")
            records = [
                consent_mod.record(
                    member,
                    p,
                    c.action,
                    notice,
                    actor=c.actor,
                    collection_method=c.collection_method,
                    expires_at=c.expires_at,
                )
                for p in purposes
            ]
            prepared.append((records, sign_receipt(build_receipt(records, notice, self.signer.name), self.signer)))
            events += [
                (
                    f"consent.{c.action.value}",
                    {
                        "subject_pseudo_ids": [member],
                        "purpose_code": r.purpose_code,
                        "consent_ids": [r.consent_id],
                        "legal_basis": "consent",
                        "outcome": "ok",
                        "details": {"notice_version": notice.version, "actor": c.actor.split(":")[0]},
                    },
                )
                for r in records
            ]
        current = self.current_actor() if self.current_actor is not None else None
        actors = [c.audit_actor or current for c in changes for _ in dict.fromkeys(c.purposes)]
        events = [(a, {**f, "actor": actor}) if actor else (a, f) for (a, f), actor in zip(events, actors, strict=True)]
        staged = outbox.with_ids(events)
        owed = self.alongside([r for records, _ in prepared for r in records]) if self.alongside else None
        both = [w for w in (also, owed) if w is not None]
        self.store.append_consent_changes(  # records, staged events, notices: one transaction
            prepared, staged, (lambda conn: [w(conn) for w in both]) if both else None
        )
        if self.audit_batch is not None:
            self.audit_batch(staged)
        else:
            for action, fields in staged:
                self.audit(action, **fields)
        self.store.outbox_appended(f["event_id"] for _, f in staged)
        if self.after_change is not None:
            self.after_change([r for records, _ in prepared for r in records])
        return [receipt for _, receipt in prepared]

    def change_each(self, changes: Sequence[ConsentChange]) -> list[str | Exception]:
        """:meth:`change_many`, where a change refused (unknown member or purpose, a minor alone) is
        answered with its error and never refuses the others: one receipt or one error per change."""
        try:
            return list(self.change_many(changes))
        except (LookupError, PurposeError, PermissionError):
            pass  # raised before anything was written: apply them one by one to find whose it was
        results: list[str | Exception] = []
        for c in changes:
            try:
                results += self.change_many([c])
            except (LookupError, PurposeError, PermissionError) as exc:
                results.append(exc)
        return results

    def decisions(self, member_ref: str, recipients: Sequence[str] = ()) -> dict[str, Decision]:
        """The current decision for every optional purpose the member has a record for, plus the rest
        (with ``recipients``, also each recipient-specific purpose for each of them, chosen or not)."""
        member, minor = self._registered(member_ref)
        history = self.store.history(member)
        optional = catalogue().optional_codes(recipients=list(recipients))
        codes = dict.fromkeys([*optional, *(r.purpose_code for r in history)])
        notices = self.store.notices()  # read once for every purpose
        return {code: self._decide(member_ref, history, code, notices, minor) for code in codes}

    def _decide(
        self,
        member_ref: str,
        history: list[consent_mod.ConsentRecord],
        code: str,
        notices: dict[int, Notice] | None = None,
        minor: bool | None = None,
    ) -> Decision:
        purpose = catalogue().purpose(code)
        notices = self.store.notices() if notices is None else notices
        current = notices[max(notices)] if notices else None
        if current is None and purpose.needs_consent:
            return Decision(False, Reason.NO_CONSENT)
        minor = self._minor(member_ref) if minor is None else minor
        return consent_mod.decide(
            history,
            purpose,
            now=datetime.now(UTC),
            current_notice=current,  # type: ignore[arg-type]
            notices=notices,
            minor=minor,
            minors_allowed=code in self.minors_in or not minor,
        )

    def cohort(self, purpose_code: str) -> list[str]:
        """Pseudonyms of every member :meth:`check` would allow for ``purpose_code`` now, sorted.

        The same decision as the gate, taken for everyone from three reads (keys, birth dates,
        the purpose's records) instead of four per member: erased members have no key and are
        never in it, minors only where the purpose admits them. Nothing is audited: a cohort is
        a selection, and the use that follows records its own manifest.
        """
        purpose = catalogue().purpose(purpose_code)
        notices = self.store.notices()
        if not notices and purpose.needs_consent:
            return []
        current = notices[max(notices)] if notices else None
        histories = self.store.histories_of_purpose(purpose_code)
        births = self.store.birth_dates()
        today, now = datetime.now(UTC).date(), datetime.now(UTC)
        chosen = []
        for index, pseudonym in self.keyring.by_index().items():
            if index not in births:
                continue  # a key without a member record: erasure was under way
            minor = consent_mod.is_minor(births[index], today)
            decision = consent_mod.decide(
                histories.get(pseudonym, []),
                purpose,
                now=now,
                current_notice=current,  # type: ignore[arg-type]
                notices=notices,
                minor=minor,
                minors_allowed=purpose_code in self.minors_in or not minor,
            )
            if decision.allowed:
                chosen.append(pseudonym)
        return sorted(chosen)

    # --- the gate -------------------------------------------------------------------------

    def check(
        self, member_ref: str, purpose_code: str, *, recipient: str | None = None, accessor: str = "service"
    ) -> Decision:
        """Allow this use of the member's data now, or raise :class:`ConsentDenied` (and audit it).

        ``recipient`` names the brand the data goes to: the purpose becomes
        ``points_exchange:<recipient>`` style separate consent when the family takes one.
        """
        family = purpose_code.rstrip(":") + ":"
        code = f"{family}{recipient}" if recipient and family in catalogue().families else purpose_code
        member, minor = self._registered(member_ref)
        decision = self._decide(member_ref, self.store.history(member), code, minor=minor)
        if not decision.allowed:
            action = "pi.provide.denied" if recipient else "gate.denied"
            self.audit(
                action,
                subject_pseudo_ids=[member],
                purpose_code=code,
                outcome="denied",
                reason_code=decision.reason.value,
                details={"accessor": accessor},
            )
            raise ConsentDenied(code, decision.reason, recipient)
        return decision
