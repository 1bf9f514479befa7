"""Data localisation and the one egress check every outbound call goes through (PIPL Art. 38-40).

Pure policy: given where the node is, where the call goes, which payload fields carry personal
information, and what the member consented to, allow or refuse with a reason. Transfers abroad
also need a recorded mechanism, and which one depends on how many distinct individuals this
handler has sent abroad since 1 January (2024 Cross-Border Provisions, Arts. 5, 7, 8).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

import sqlmodel
from sqlalchemy import Engine, func, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Field, Session, SQLModel

GENERAL_EXEMPT_BELOW = 100_000
GENERAL_ASSESSMENT_FROM = 1_000_000
SENSITIVE_ASSESSMENT_FROM = 10_000
NON_PI = "non_pi"
#: Where a node, its backups and its logs may be hosted (PIPL Art. 40; Hong Kong and Macao count as outbound).
HOSTING_REGIONS = frozenset({"CN"})


def hosting_problem(region: str) -> str | None:
    """Why hosting in ``region`` breaks data localisation, or None if it does not."""
    if region in HOSTING_REGIONS:
        return None
    return (
        f"region {region!r} is outside mainland China: PIPL Art. 40 keeps storage, backups and logs in CN "
        '(set region = "CN" in node.toml; peers abroad are reached through the egress check instead)'
    )


class Mechanism(StrEnum):
    """What an outbound transfer needs, in increasing order of weight."""

    NONE = "none"  # below the thresholds: notice, separate consent and PIA still apply
    STANDARD_CONTRACT = "standard_contract"  # SCC filed within 10 working days, or certification
    SECURITY_ASSESSMENT = "security_assessment"  # CAC security assessment


_ORDER = [Mechanism.NONE, Mechanism.STANDARD_CONTRACT, Mechanism.SECURITY_ASSESSMENT]


def required_mechanism(general: int, sensitive: int) -> Mechanism:
    """The mechanism the year's distinct counts call for (general PI, sensitive PI)."""
    if general >= GENERAL_ASSESSMENT_FROM or sensitive >= SENSITIVE_ASSESSMENT_FROM:
        return Mechanism.SECURITY_ASSESSMENT
    if general >= GENERAL_EXEMPT_BELOW or sensitive > 0:
        return Mechanism.STANDARD_CONTRACT
    return Mechanism.NONE


def sufficient(have: Mechanism | None, need: Mechanism) -> bool:
    """Whether a recorded mechanism covers what is needed (an assessment covers a contract)."""
    return need is Mechanism.NONE or (have is not None and _ORDER.index(have) >= _ORDER.index(need))


class EgressReason(StrEnum):
    """Why an outbound call is allowed or refused."""

    NO_PI = "no_personal_information"
    DOMESTIC_CONSENTED = "domestic_with_consent"
    CROSS_BORDER_OK = "cross_border_with_consent_and_mechanism"
    UNKNOWN_DESTINATION = "destination_not_in_registry"
    REGION_NOT_ALLOWED = "destination_region_not_allowed"
    UNDECLARED_FIELD = "payload_field_not_declared"
    CATEGORY_OUTSIDE_PURPOSE = "pi_category_outside_purpose"
    NO_PURPOSE_CONSENT = "no_consent_for_purpose_and_recipient"
    NO_CROSS_BORDER_CONSENT = "no_separate_cross_border_consent"
    NO_MECHANISM = "no_sufficient_transfer_mechanism"


@dataclass(frozen=True)
class Destination:
    """Where an outbound call goes: a registered peer (or service) and its region."""

    id: str
    region: str  # ISO 3166 alpha-2


@dataclass(frozen=True)
class EgressDecision:
    """The verdict on one outbound call."""

    allowed: bool
    reason: EgressReason
    cross_border: bool = False
    pi_fields: tuple[str, ...] = ()


@dataclass(frozen=True)
class EgressPolicy:
    """This node's localisation policy."""

    home_region: str = "CN"
    allowed_regions: frozenset[str] = frozenset({"CN"})

    def check(
        self,
        destination: Destination | None,
        field_tags: Mapping[str, str],
        payload_fields: set[str],
        *,
        purpose_consented: bool,
        cross_border_consented: bool,
        mechanism: Mechanism | None,
        needed: Mechanism,
    ) -> EgressDecision:
        """Decide one call. ``field_tags`` maps each declared field to a PI category or ``non_pi``."""
        if destination is None:
            return EgressDecision(False, EgressReason.UNKNOWN_DESTINATION)
        undeclared = payload_fields - set(field_tags)
        if undeclared:
            return EgressDecision(False, EgressReason.UNDECLARED_FIELD, pi_fields=tuple(sorted(undeclared)))
        pi = tuple(sorted(f for f in payload_fields if field_tags[f] != NON_PI))
        abroad = destination.region != self.home_region
        if destination.region not in self.allowed_regions and (pi or not abroad):
            return EgressDecision(False, EgressReason.REGION_NOT_ALLOWED, abroad, pi)
        if not pi:
            return EgressDecision(True, EgressReason.NO_PI, abroad)
        if not purpose_consented:
            return EgressDecision(False, EgressReason.NO_PURPOSE_CONSENT, abroad, pi)
        if not abroad:
            return EgressDecision(True, EgressReason.DOMESTIC_CONSENTED, False, pi)
        if not cross_border_consented:
            return EgressDecision(False, EgressReason.NO_CROSS_BORDER_CONSENT, True, pi)
        if not sufficient(mechanism, needed):
            return EgressDecision(False, EgressReason.NO_MECHANISM, True, pi)
        return EgressDecision(True, EgressReason.CROSS_BORDER_OK, True, pi)


class CrossBorderSubject(SQLModel, table=True):
    """One individual sent abroad in one calendar year (distinct: the key makes duplicates no-ops)."""

    __tablename__ = "compliance_xborder_subject"
    year: int = Field(primary_key=True)
    member: str = Field(primary_key=True, max_length=64)
    sensitive: bool = Field(primary_key=True)


class CrossBorderCounter:
    """Distinct individuals sent abroad since 1 January, general and sensitive."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create_schema(self) -> None:
        """Create the table if missing."""
        SQLModel.metadata.create_all(self.engine, tables=[CrossBorderSubject.__table__])

    def add(self, members: set[str], sensitive: bool, day: date) -> None:
        """Count these pseudonyms for ``day``'s year; repeats are not counted twice."""
        if not members:
            return
        t = CrossBorderSubject.__table__
        rows = [{"year": day.year, "member": m, "sensitive": sensitive} for m in members]
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "sqlite":
                conn.execute(sqlite_insert(t).on_conflict_do_nothing(), rows)
            else:
                from sqlalchemy.dialects.postgresql import insert as pg_insert

                conn.execute(pg_insert(t).on_conflict_do_nothing(), rows)

    def counts(self, year: int) -> tuple[int, int]:
        """(general, sensitive) distinct individuals in ``year``."""
        t = CrossBorderSubject.__table__
        with self.engine.connect() as conn:
            rows = dict(
                conn.execute(select(t.c.sensitive, func.count()).where(t.c.year == year).group_by(t.c.sensitive)).all()
            )
        return rows.get(False, 0), rows.get(True, 0)

    def required(self, year: int, adding_general: int = 0, adding_sensitive: int = 0) -> Mechanism:
        """The mechanism needed if this many more individuals went abroad this year."""
        general, sensitive = self.counts(year)
        return required_mechanism(general + adding_general, sensitive + adding_sensitive)

    def new_among(self, members: set[str], sensitive: bool, year: int) -> int:
        """How many of ``members`` are not yet counted for ``year`` (what a transfer would add)."""
        if not members:
            return 0
        t = CrossBorderSubject.__table__
        seen: set[str] = set()
        ordered = sorted(members)
        with self.engine.connect() as conn:
            for start in range(0, len(ordered), 500):
                chunk = ordered[start : start + 500]
                seen.update(
                    conn.execute(
                        select(t.c.member).where(t.c.year == year, t.c.sensitive == sensitive, t.c.member.in_(chunk))
                    ).scalars()
                )
        return len(members) - len(seen)


class MechanismRecord(SQLModel, table=True):
    """A transfer mechanism in force for one destination country (SCC filing, certification, assessment)."""

    __tablename__ = "compliance_xborder_mechanism"
    id: int | None = Field(default=None, primary_key=True)
    country: str = Field(index=True, max_length=2)
    mechanism: str = Field(max_length=32)
    reference: str = Field(max_length=200)  # filing number, certificate or assessment reference
    valid_from: date
    valid_until: date
    recorded_by: str = Field(max_length=200)


class MechanismRegistry:
    """The transfer mechanisms this handler has in force, per destination country (append-only)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create_schema(self) -> None:
        """Create the table if missing."""
        SQLModel.metadata.create_all(self.engine, tables=[MechanismRecord.__table__])

    def record(
        self, country: str, mechanism: Mechanism, reference: str, valid_from: date, valid_until: date, by: str
    ) -> MechanismRecord:
        """Record a mechanism; ``Mechanism.NONE`` is not a mechanism and is refused."""
        if mechanism is Mechanism.NONE:
            raise ValueError("record a standard contract or a security assessment, not 'none'")
        if not (len(country) == 2 and country.isalpha() and country.isupper()):
            raise ValueError(f"country must be an ISO 3166 alpha-2 code such as SG, not {country!r}")
        if valid_until < valid_from:
            raise ValueError("valid_until is before valid_from")
        if not reference.strip():
            raise ValueError("a mechanism needs its filing or certificate reference")
        row = MechanismRecord(
            country=country,
            mechanism=mechanism.value,
            reference=reference.strip(),
            valid_from=valid_from,
            valid_until=valid_until,
            recorded_by=by,
        )
        with Session(self.engine) as session:
            session.add(row)
            session.commit()
            session.refresh(row)
        return row

    def all(self) -> list[MechanismRecord]:
        """Every mechanism ever recorded, oldest first."""
        with Session(self.engine) as session:
            return list(session.exec(sqlmodel.select(MechanismRecord).order_by(MechanismRecord.id)))  # type: ignore[arg-type]

    def in_force(self, country: str, day: date) -> tuple[Mechanism, str] | None:
        """The strongest mechanism in force for ``country`` on ``day`` and its reference, if any."""
        best: tuple[Mechanism, str] | None = None
        for rec in self.all():
            if rec.country == country and rec.valid_from <= day <= rec.valid_until:
                mech = Mechanism(rec.mechanism)
                if best is None or _ORDER.index(mech) > _ORDER.index(best[0]):
                    best = (mech, rec.reference)
        return best
