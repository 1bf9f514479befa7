"""Personal-information impact assessments (PIPL Art. 55-56) and the feature switches they unlock.

Pure logic: what an assessment must contain, when it counts as approved (four eyes: someone other
than its author, holding the compliance role, approves it), when it expires, and whether a
feature may be on. Exchange, joint modeling, personalization and cross-border transfer stay off
until an approved, unexpired assessment covering them is named; when that assessment expires
the feature is off again at the next use, without anyone flipping a switch.

Storage and auditing are in :mod:`compliance.pia_service`; rendering in :mod:`compliance.pia_report`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from compliance.purposes import PurposeError, catalogue
from ledger.canonical import canonical_json

#: Assessments and their approvals are kept at least this long (PIPL Art. 56: three years).
RETENTION = timedelta(days=3 * 366)
#: The longest an approval may run before the assessment must be reviewed again.
MAX_VALIDITY = timedelta(days=366)


class Feature(StrEnum):
    """Processing that PIPL Art. 55 requires an impact assessment for, before it starts."""

    POINTS_EXCHANGE = "points_exchange"  # providing PI to another handler (Art. 55(3))
    JOINT_MODELING = "joint_modeling"  # automated decision-making (Art. 55(2))
    PERSONALIZATION = "personalization"  # automated decision-making (Art. 55(2))
    CROSS_BORDER = "cross_border"  # providing PI abroad (Art. 55(4))


#: The purpose family each feature processes for: an assessment must list it.
FEATURE_PURPOSES: dict[Feature, str] = {
    Feature.POINTS_EXCHANGE: "points_exchange:",
    Feature.JOINT_MODELING: "joint_modeling",
    Feature.PERSONALIZATION: "personalization",
    Feature.CROSS_BORDER: "cross_border:",
}


class RiskLevel(StrEnum):
    """GB/T 39335 risk levels (impact x likelihood)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    SEVERE = "severe"


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=10, max_length=4000)]


class Assessment(BaseModel):
    """What an assessment states (GB/T 39335: legitimacy and necessity, impact and risk, measures).

    Authors write it as TOML or JSON; everything is required except ``id``, which defaults to
    a digest of the content.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=200)]
    features: tuple[Feature, ...] = Field(min_length=1)
    purposes: tuple[str, ...] = Field(min_length=1, description="purpose codes the processing serves")
    legitimacy: Text = Field(description="the legal basis and why processing is lawful and proper")
    necessity: Text = Field(description="why this PI, this much, is needed for the purpose")
    impact: Text = Field(description="the impact on members' rights and interests")
    likelihood: RiskLevel
    risk_level: RiskLevel
    measures: tuple[Text, ...] = Field(min_length=1, description="protective measures, each proportionate")
    valid_days: int = Field(default=365, ge=1, le=MAX_VALIDITY.days)

    @field_validator("purposes")
    @classmethod
    def _known_purposes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for code in v:
            if code.endswith(":"):
                if code not in catalogue().families:
                    raise ValueError(f"unknown purpose family {code!r}")
                continue
            try:
                catalogue().purpose(code)
            except PurposeError as exc:
                raise ValueError(str(exc)) from exc
        return v

    @model_validator(mode="after")
    def _features_have_their_purpose(self) -> Assessment:
        for feature in self.features:
            family = FEATURE_PURPOSES[feature]
            if not any(p == family or (p.startswith(family) and family.endswith(":")) for p in self.purposes):
                raise ValueError(f"feature {feature.value!r} needs purpose {family!r} among the purposes")
        return self

    def canonical(self) -> bytes:
        """The exact bytes the assessment's hash and approvals cover (its canonical JSON)."""
        return canonical_json(self.model_dump(mode="json"))

    @property
    def sha256(self) -> str:
        """The hash that approvals and audit events pin."""
        return hashlib.sha256(self.canonical()).hexdigest()

    @property
    def default_id(self) -> str:
        """``pia-`` and the first 12 hex digits of the hash."""
        return f"pia-{self.sha256[:12]}"


class Status(StrEnum):
    """Where an assessment stands."""

    DRAFT = "draft"  # submitted, waiting for a second person's approval
    APPROVED = "approved"
    EXPIRED = "expired"


class PiaRefused(Exception):
    """An approval or feature switch the rules do not allow; ``reason`` is machine-readable."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class UnknownPiaError(LookupError):
    """No assessment has this id."""

    def __str__(self) -> str:  # LookupError would quote the message
        return str(self.args[0]) if self.args else "unknown assessment"


@dataclass(frozen=True)
class PiaRecord:
    """A stored assessment and its approval."""

    pia_id: str
    assessment: Assessment
    author: str
    submitted_at: datetime
    approver: str | None = None
    approved_at: datetime | None = None

    @property
    def expires_at(self) -> datetime | None:
        """When the approval lapses (``valid_days`` after approval)."""
        if self.approved_at is None:
            return None
        return self.approved_at + timedelta(days=self.assessment.valid_days)

    @property
    def retain_until(self) -> date:
        """The earliest day the record may be deleted."""
        return (self.submitted_at + RETENTION).date()

    def status(self, now: datetime) -> Status:
        """Draft until approved; approved until it expires."""
        if self.approved_at is None:
            return Status.DRAFT
        assert self.expires_at is not None
        return Status.APPROVED if now < self.expires_at else Status.EXPIRED

    def covers(self, feature: Feature) -> bool:
        """Whether this assessment assessed ``feature``."""
        return feature in self.assessment.features


def check_approval(record: PiaRecord, approver: str) -> None:
    """Raise :class:`PiaRefused` unless ``approver`` may approve ``record`` (four eyes, once)."""
    if record.approved_at is not None:
        raise PiaRefused("already_approved", f"{record.pia_id} was approved by {record.approver}")
    if approver == record.author:
        raise PiaRefused("four_eyes", f"{approver} wrote {record.pia_id}; someone else must approve it")


def check_feature(feature: Feature, record: PiaRecord | None, now: datetime) -> None:
    """Raise :class:`PiaRefused` unless ``record`` is an approved, unexpired assessment of ``feature``."""
    if record is None:
        raise PiaRefused("no_pia", f"{feature.value} needs an approved impact assessment (PIPL Art. 55)")
    status = record.status(now)
    if status is Status.DRAFT:
        raise PiaRefused("pia_not_approved", f"{record.pia_id} is not approved yet")
    if status is Status.EXPIRED:
        raise PiaRefused("pia_expired", f"{record.pia_id} expired on {record.expires_at:%Y-%m-%d}; review it")
    if not record.covers(feature):
        raise PiaRefused("pia_does_not_cover", f"{record.pia_id} does not assess {feature.value}")


def example_assessment() -> Assessment:
    """The assessment shipped as ``compliance/data/pia_example.toml`` (exchange and joint modeling)."""
    import tomllib
    from importlib.resources import files

    return Assessment.model_validate(tomllib.loads(files("compliance").joinpath("data/pia_example.toml").read_text()))


def utcnow() -> datetime:
    """Now, in UTC (one place, so tests can travel in time through arguments instead)."""
    return datetime.now(UTC)
