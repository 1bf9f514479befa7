"""Stored impact assessments, their approval, and the feature switches they gate.

Assessments are never updated or deleted here: a changed assessment is a new one with a new id,
and every submission, approval and switch is in the audit trail with the assessment's hash, so
the evidence outlives the database row (PIPL Art. 56 keeps it three years).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select, update
from sqlmodel import Field, SQLModel

from compliance.pia import (
    Assessment,
    Feature,
    PiaRecord,
    PiaRefused,
    UnknownPiaError,
    check_approval,
    check_feature,
    utcnow,
)
from compliance.read_once import forget, memoised
from compliance.service import AuditSink
from compliance.store import DuplicateError


class PiaRow(SQLModel, table=True):
    """One assessment as submitted, and who approved it."""

    __tablename__ = "compliance_pia"
    pia_id: str = Field(primary_key=True, max_length=80)
    body: str  # the assessment's canonical JSON
    sha256: str = Field(max_length=64)
    author: str = Field(max_length=200)
    submitted_at: datetime
    approver: str | None = Field(default=None, max_length=200)
    approved_at: datetime | None = None


class FeatureRow(SQLModel, table=True):
    """A feature switch: on only while it names an approved, unexpired assessment."""

    __tablename__ = "compliance_feature"
    feature: str = Field(primary_key=True, max_length=40)
    enabled: bool = False
    pia_id: str | None = Field(default=None, max_length=80)
    changed_by: str = Field(max_length=200)
    changed_at: datetime


TABLES = [PiaRow.__table__, FeatureRow.__table__]


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything here is stored in UTC
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _record(row: object) -> PiaRecord:
    return PiaRecord(
        pia_id=row.pia_id,  # type: ignore[attr-defined]
        assessment=Assessment.model_validate_json(row.body),  # type: ignore[attr-defined]
        author=row.author,  # type: ignore[attr-defined]
        submitted_at=_aware(row.submitted_at),  # type: ignore[arg-type, attr-defined]
        approver=row.approver,  # type: ignore[attr-defined]
        approved_at=_aware(row.approved_at),  # type: ignore[attr-defined]
    )


class PiaService:
    """Submit and approve assessments; switch features on and off; the feature gate."""

    def __init__(self, engine: Engine, audit: AuditSink) -> None:
        self.engine = engine
        self.audit = audit

    def create_schema(self) -> None:
        """Create the tables if missing."""
        SQLModel.metadata.create_all(self.engine, tables=TABLES)

    def submit(self, assessment: Assessment, author: str, pia_id: str | None = None) -> PiaRecord:
        """Store a new assessment as a draft; it needs someone else's approval before it counts."""
        pia_id = pia_id or assessment.default_id
        now = utcnow()
        with self.engine.begin() as conn:
            if conn.execute(select(PiaRow.__table__.c.pia_id).where(PiaRow.__table__.c.pia_id == pia_id)).first():
                raise DuplicateError(f"assessment {pia_id!r} already exists; a changed assessment needs a new id")
            conn.execute(
                insert(PiaRow.__table__).values(
                    pia_id=pia_id,
                    body=assessment.canonical().decode(),
                    sha256=assessment.sha256,
                    author=author,
                    submitted_at=now,
                )
            )
        self.audit("pia.submitted", details={"pia_id": pia_id, "sha256": assessment.sha256, "author": author})
        return PiaRecord(pia_id, assessment, author, now)

    def get(self, pia_id: str) -> PiaRecord:
        """The assessment ``pia_id``, or :class:`UnknownPiaError`."""
        t = PiaRow.__table__
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.pia_id == pia_id)).first()
        if row is None:
            raise UnknownPiaError(f"no impact assessment {pia_id!r}")
        return _record(row)

    def all(self) -> list[PiaRecord]:
        """Every assessment, oldest first."""
        t = PiaRow.__table__
        with self.engine.connect() as conn:
            return [_record(r) for r in conn.execute(select(t).order_by(t.c.submitted_at, t.c.pia_id))]

    def approve(self, pia_id: str, approver: str, now: datetime | None = None) -> PiaRecord:
        """Approve ``pia_id`` as ``approver`` (not its author; once)."""
        forget()
        record = self.get(pia_id)
        check_approval(record, approver)
        now = now or utcnow()
        t = PiaRow.__table__
        with self.engine.begin() as conn:
            done = conn.execute(
                update(t)
                .where(t.c.pia_id == pia_id, t.c.approved_at.is_(None))
                .values(approver=approver, approved_at=now)
            ).rowcount
        if done != 1:  # someone else approved it between our read and write
            raise PiaRefused("already_approved", f"{pia_id} was approved meanwhile")
        approved = self.get(pia_id)
        self.audit(
            "pia.approved",
            details={
                "pia_id": pia_id,
                "sha256": record.assessment.sha256,
                "approver": approver,
                "expires_at": f"{approved.expires_at:%Y-%m-%dT%H:%M:%SZ}",
            },
        )
        return approved

    # --- feature switches -----------------------------------------------------------------

    def enable(self, feature: Feature, pia_id: str, by: str, now: datetime | None = None) -> None:
        """Switch ``feature`` on under assessment ``pia_id``, or raise :class:`PiaRefused` (audited)."""
        now = now or utcnow()
        try:
            record = self.get(pia_id)
        except LookupError:
            record = None
        try:
            check_feature(feature, record, now)
        except PiaRefused as exc:
            self.audit(
                "feature.enable",
                outcome="denied",
                reason_code=exc.reason,
                details={"feature": feature.value, "pia_id": pia_id},
            )
            raise
        self._set(feature, True, pia_id, by, now)
        self.audit("feature.enable", details={"feature": feature.value, "pia_id": pia_id})

    def disable(self, feature: Feature, by: str) -> None:
        """Switch ``feature`` off (always allowed)."""
        self._set(feature, False, None, by, utcnow())
        self.audit("feature.disable", details={"feature": feature.value})

    def _set(self, feature: Feature, enabled: bool, pia_id: str | None, by: str, now: datetime) -> None:
        t = FeatureRow.__table__
        forget()
        values = {"enabled": enabled, "pia_id": pia_id, "changed_by": by, "changed_at": now}
        with self.engine.begin() as conn:
            if not conn.execute(update(t).where(t.c.feature == feature.value).values(**values)).rowcount:
                conn.execute(insert(t).values(feature=feature.value, **values))

    def switches(self, now: datetime | None = None) -> dict[Feature, tuple[bool, str | None, str]]:
        """Every feature: (effectively on, its assessment, why) — an expired assessment turns it off."""
        if now is None:
            return memoised("switches", lambda: self._switches(utcnow()))
        return self._switches(now)

    def _switches(self, now: datetime) -> dict[Feature, tuple[bool, str | None, str]]:
        t, pt = FeatureRow.__table__, PiaRow.__table__
        with self.engine.connect() as conn:  # one connection: this runs on every gated request
            rows = {r.feature: r for r in conn.execute(select(t))}
            wanted = sorted({r.pia_id for r in rows.values() if r.enabled and r.pia_id})
            pias = {r.pia_id: _record(r) for r in conn.execute(select(pt).where(pt.c.pia_id.in_(wanted)))}
        out: dict[Feature, tuple[bool, str | None, str]] = {}
        for feature in Feature:
            row = rows.get(feature.value)
            if row is None or not row.enabled:
                out[feature] = (False, None, "switched_off")
                continue
            try:
                if row.pia_id not in pias:
                    raise UnknownPiaError(f"no impact assessment {row.pia_id!r}")
                check_feature(feature, pias[row.pia_id], now)
            except (PiaRefused, LookupError) as exc:
                out[feature] = (False, row.pia_id, getattr(exc, "reason", "no_pia"))
            else:
                out[feature] = (True, row.pia_id, "approved_pia")
        return out

    def require(self, feature: Feature, now: datetime | None = None) -> None:
        """The feature gate every data path calls: raise :class:`PiaRefused` unless ``feature`` is on.

        Read on every call (no cache), so switching off or an assessment expiring counts at once.
        """
        on, pia_id, reason = self.switches(now)[feature]
        if not on:
            self.audit(
                "gate.denied",
                outcome="denied",
                reason_code=reason if reason != "switched_off" else "feature_off",
                details={"feature": feature.value, "pia_id": pia_id},
            )
            raise PiaRefused(
                "feature_off" if reason == "switched_off" else reason,
                f"{feature.value} is off"
                + ("" if reason == "switched_off" else f": its assessment {pia_id} is {reason.replace('_', ' ')}"),
            )
