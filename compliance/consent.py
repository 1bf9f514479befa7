"""Consent as an append-only history; the current state is derived from it, never stored.

Pure logic: records in, decisions out. A purpose with a contract basis needs no consent; every
other purpose is off until granted, one record per purpose (no bundling), and a withdrawal
stops future use without touching the past. A grant under an older notice stops counting when a
newer notice widens that purpose, until the member renews. Members under 14 need a guardian.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum

from compliance.notices import Notice, covers
from compliance.purposes import Purpose, PurposeError

ADULT_AGE = 14  # PIPL Art. 28/31: under 14, a guardian consents


class ConsentAction(StrEnum):
    """What a consent record does."""

    GRANT = "grant"
    WITHDRAW = "withdraw"
    RENEW = "renew"


class Reason(StrEnum):
    """Why a use is allowed or refused; refusals carry one to the member and the audit trail."""

    CONTRACT_BASIS = "contract_basis"
    CONSENT_GRANTED = "consent_granted"
    NO_CONSENT = "no_consent"
    WITHDRAWN = "consent_withdrawn"
    EXPIRED = "consent_expired"
    RENEWAL_REQUIRED = "notice_renewal_required"
    GUARDIAN_REQUIRED = "guardian_consent_required"
    MINOR_EXCLUDED = "minor_excluded"


@dataclass(frozen=True)
class ConsentRecord:
    """One grant, withdrawal or renewal, as stored (append-only)."""

    member: str  # the member's pseudonym
    purpose_code: str
    action: ConsentAction
    notice_version: int
    notice_sha256: str
    at: datetime
    actor: str = "self"  # "self" or "guardian:<guardian pseudonym>"
    collection_method: str = "api"
    expires_at: datetime | None = None
    consent_id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass(frozen=True)
class Decision:
    """The answer to "may this member's data be used for this purpose now?"."""

    allowed: bool
    reason: Reason
    consent_id: str | None = None


def age_on(birth_date: date, day: date) -> int:
    """Whole years between ``birth_date`` and ``day``."""
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))


def is_minor(birth_date: date | None, day: date) -> bool:
    """Under 14 on ``day`` (an unknown birth date is not treated as a minor)."""
    return birth_date is not None and age_on(birth_date, day) < ADULT_AGE


def latest(records: Iterable[ConsentRecord], purpose_code: str) -> ConsentRecord | None:
    """The most recent record for ``purpose_code`` (history order breaks timestamp ties)."""
    found = None
    for r in records:
        if r.purpose_code == purpose_code and (found is None or r.at >= found.at):
            found = r
    return found


def decide(
    records: Iterable[ConsentRecord],
    purpose: Purpose,
    *,
    now: datetime,
    current_notice: Notice,
    notices: Mapping[int, Notice],
    minor: bool = False,
    minors_allowed: bool = True,
) -> Decision:
    """Decide from the member's history alone; nothing is cached, so a withdrawal counts at once."""
    if minor and not minors_allowed:
        return Decision(False, Reason.MINOR_EXCLUDED)
    if not purpose.needs_consent:
        return Decision(True, Reason.CONTRACT_BASIS)
    last = latest(records, purpose.code)
    if last is None:
        return Decision(False, Reason.NO_CONSENT)
    if last.action is ConsentAction.WITHDRAW:
        return Decision(False, Reason.WITHDRAWN, last.consent_id)
    if last.expires_at is not None and last.expires_at <= now:
        return Decision(False, Reason.EXPIRED, last.consent_id)
    if minor and not last.actor.startswith("guardian:"):
        return Decision(False, Reason.GUARDIAN_REQUIRED, last.consent_id)
    consented_under = notices.get(last.notice_version)
    if consented_under is None or not covers(consented_under, current_notice, purpose.code):
        return Decision(False, Reason.RENEWAL_REQUIRED, last.consent_id)
    return Decision(True, Reason.CONSENT_GRANTED, last.consent_id)


def record(
    member: str,
    purpose: Purpose,
    action: ConsentAction,
    notice: Notice,
    *,
    actor: str = "self",
    collection_method: str = "api",
    expires_at: datetime | None = None,
    at: datetime | None = None,
) -> ConsentRecord:
    """A new record for one purpose; refuses purposes that need no consent (nothing to record)."""
    if not purpose.needs_consent:
        raise PurposeError(f"{purpose.code} rests on {purpose.legal_basis}: there is no consent to give or withdraw")
    return ConsentRecord(
        member=member,
        purpose_code=purpose.code,
        action=action,
        notice_version=notice.version,
        notice_sha256=notice.sha256(),
        at=at or datetime.now(UTC),
        actor=actor,
        collection_method=collection_method,
        expires_at=expires_at,
    )
