"""Automated decisions as made (PIPL Art. 24): what went in, what came out, and why.

Each decision about a member (a churn score, later a tier change ...) is kept with its inputs, its
result among the results it could have had, its main factors and the model that made it, under a
decision id the member is given. The audit event of the decision (``adm.decide``) names the id and
the SHA-256 of the record, so a reviewer reading the record later can tell it is the one audited.

The record is the member's personal information: an access request exports it and an erasure
deletes it (it is a rights :class:`~compliance.rights_service.DataSource`); the audit log keeps only
the id and the hash.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Text, delete, insert, select
from sqlmodel import Column, Field, SQLModel

from ledger.canonical import canonical_json


class DecisionRow(SQLModel, table=True):
    """One automated decision: who it was about (pseudonym), what kind, when; the rest as canonical JSON."""

    __tablename__ = "compliance_adm_decision"
    decision_id: str = Field(primary_key=True, max_length=32)
    member: str = Field(index=True, max_length=64)
    kind: str = Field(max_length=50)
    made_at: datetime
    body: str = Field(sa_column=Column(Text, nullable=False))


@dataclass(frozen=True)
class Factor:
    """One input's effect on the result (positive: it pushed the score up)."""

    feature: str
    effect: float


@dataclass(frozen=True)
class Decision:
    """An automated decision about one member, as it was made."""

    member: str  # pseudonym
    kind: str  # e.g. "churn_score"
    result: str  # what was decided, one of ``choices`` (a churn band: "high")
    choices: tuple[str, ...]  # every result the decision could have had: what a human may change it to
    inputs: dict[str, float]  # the values the model read, by name
    factors: tuple[Factor, ...]  # the main factors, largest effect first
    model: dict[str, Any]  # which model decided (run, round, blend share)
    score: float | None = None  # the number behind the result, if there is one (a churn risk)
    decision_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    made_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if self.result not in self.choices:
            raise ValueError(f"result {self.result!r} is not one of the decision's choices {self.choices}")

    def body(self) -> dict[str, Any]:
        """Everything but the columns of its row, JSON-ready."""
        return {
            "result": self.result,
            "choices": list(self.choices),
            "inputs": self.inputs,
            "factors": [{"feature": f.feature, "effect": f.effect} for f in self.factors],
            "model": self.model,
            "score": self.score,
        }

    def as_json(self) -> dict[str, Any]:
        """The whole record, JSON-ready: what the member and the reviewer see."""
        head = {"decision_id": self.decision_id, "member": self.member, "kind": self.kind}
        return head | {"made_at": self.made_at.isoformat()} | self.body()

    def sha256(self) -> str:
        """The SHA-256 of the record's canonical JSON: what the decision's audit event pins."""
        return hashlib.sha256(canonical_json(self.as_json())).hexdigest()


def _decision(row: Any) -> Decision:
    body = json.loads(row.body)
    made_at = row.made_at if row.made_at.tzinfo else row.made_at.replace(tzinfo=UTC)
    return Decision(
        member=row.member,
        kind=row.kind,
        result=body["result"],
        choices=tuple(body["choices"]),
        inputs=body["inputs"],
        factors=tuple(Factor(f["feature"], f["effect"]) for f in body["factors"]),
        model=body["model"],
        score=body["score"],
        decision_id=row.decision_id,
        made_at=made_at,
    )


class DecisionStore:
    """The decisions made about members; a rights data source (exported on access, deleted on erasure)."""

    name = "automated_decisions"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, decision: Decision) -> None:
        """Keep a decision as made."""
        with self.engine.begin() as conn:
            conn.execute(
                insert(DecisionRow.__table__).values(
                    decision_id=decision.decision_id,
                    member=decision.member,
                    kind=decision.kind,
                    made_at=decision.made_at,
                    body=canonical_json(decision.body()).decode("ascii"),
                )
            )

    def get(self, decision_id: str) -> Decision | None:
        """The decision ``decision_id``, or None."""
        t = DecisionRow.__table__
        with self.engine.connect() as conn:
            row = conn.execute(select(t).where(t.c.decision_id == decision_id)).first()
        return None if row is None else _decision(row)

    def many(self, decision_ids: list[str]) -> dict[str, Decision]:
        """The decisions among ``decision_ids`` that exist, by id."""
        t = DecisionRow.__table__
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c.decision_id.in_(decision_ids))).all()
        return {r.decision_id: _decision(r) for r in rows}

    def of_member(self, member: str) -> list[Decision]:
        """The decisions about ``member``, oldest first."""
        t = DecisionRow.__table__
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c.member == member).order_by(t.c.made_at)).all()
        return [_decision(r) for r in rows]

    def export_member(self, pseudonym: str) -> list[dict[str, Any]]:
        """Every decision about the member, as records (an access request's part)."""
        return [d.as_json() for d in self.of_member(pseudonym)]

    def erase_member(self, pseudonym: str) -> int:
        """Delete every decision about the member; return how many went."""
        t = DecisionRow.__table__
        with self.engine.begin() as conn:
            return conn.execute(delete(t).where(t.c.member == pseudonym)).rowcount
