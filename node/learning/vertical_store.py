"""What a node keeps of its vertical runs: one row per run and, at the label holder, each aligned
member's score.

Alignment ids are never stored: they live in memory for the run that made them and mean nothing
after it. A run's row keeps what a compliance officer and the settlement report need (who took
part, on how many members, epsilon, each partner's contribution); a score row keeps a member's
churn risk from the vertical model, exported with the member's data and erased with it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, insert, select
from sqlmodel import Field, SQLModel


class VerticalRunRow(SQLModel, table=True):
    """One vertical run as this node took part in it."""

    __tablename__ = "vertical_run"
    run: str = Field(primary_key=True, max_length=200)
    role: str = Field(max_length=20)  # label_holder or partner
    label_holder: str = Field(max_length=200)
    partners_json: str  # the partner brands, sorted
    members: int  # aligned members in the run
    epsilon: float | None = None  # this brand's epsilon for the run (None: no DP)
    auc_alone: float | None = None  # the label holder's; None at partners
    auc_vertical: float | None = None
    contributions_json: str = "{}"  # partner -> held-out AUC lost without its scores
    used_json: str = "[]"  # the partners whose scores the served top model uses
    at: datetime = Field(index=True)


class VerticalScoreRow(SQLModel, table=True):
    """A member's churn risk from a vertical run's top model (the label holder's, members who consented)."""

    __tablename__ = "vertical_score"
    run: str = Field(primary_key=True, max_length=200)
    member: str = Field(primary_key=True, max_length=64)  # pseudonym
    risk: float
    at: datetime


@dataclass(frozen=True)
class VerticalRunRecord:
    """A stored run, opened."""

    run: str
    role: str
    label_holder: str
    partners: list[str]
    members: int
    epsilon: float | None
    auc_alone: float | None
    auc_vertical: float | None
    contributions: dict[str, float]
    used: list[str]
    at: datetime

    def to_json(self) -> dict[str, Any]:
        """JSON-ready."""
        return {**self.__dict__, "at": self.at.isoformat()}


class VerticalStore:
    """The node's vertical runs and scores."""

    name = "vertical_scores"  # a rights source: exported and erased with the member

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record_run(self, record: VerticalRunRecord, scores: dict[str, float] | None = None) -> None:
        """Keep a finished run and (label holder) its members' scores, in one transaction."""
        t, s = VerticalRunRow.__table__, VerticalScoreRow.__table__
        row = {
            "run": record.run,
            "role": record.role,
            "label_holder": record.label_holder,
            "partners_json": json.dumps(sorted(record.partners)),
            "members": record.members,
            "epsilon": record.epsilon,
            "auc_alone": record.auc_alone,
            "auc_vertical": record.auc_vertical,
            "contributions_json": json.dumps(record.contributions, sort_keys=True),
            "used_json": json.dumps(sorted(record.used)),
            "at": record.at,
        }
        with self.engine.begin() as conn:
            conn.execute(delete(t).where(t.c.run == record.run))
            conn.execute(delete(s).where(s.c.run == record.run))
            conn.execute(insert(t).values(**row))
            if scores:
                conn.execute(
                    insert(s), [{"run": record.run, "member": m, "risk": r, "at": record.at} for m, r in scores.items()]
                )

    def runs(self, since: datetime | None = None, until: datetime | None = None) -> list[VerticalRunRecord]:
        """Stored runs, oldest first, optionally those finished in ``[since, until)``."""
        t = VerticalRunRow.__table__
        query = select(t).order_by(t.c.at, t.c.run)
        if since is not None:
            query = query.where(t.c.at >= since)
        if until is not None:
            query = query.where(t.c.at < until)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            VerticalRunRecord(
                run=r["run"],
                role=r["role"],
                label_holder=r["label_holder"],
                partners=json.loads(r["partners_json"]),
                members=r["members"],
                epsilon=r["epsilon"],
                auc_alone=r["auc_alone"],
                auc_vertical=r["auc_vertical"],
                contributions=json.loads(r["contributions_json"]),
                used=json.loads(r["used_json"]),
                at=_aware(r["at"]),
            )
            for r in rows
        ]

    def latest_score(self, member: str) -> tuple[str, float] | None:
        """The member's score from the newest run that scored them: (run, risk)."""
        s = VerticalScoreRow.__table__
        with self.engine.connect() as conn:
            row = conn.execute(select(s.c.run, s.c.risk).where(s.c.member == member).order_by(s.c.at.desc())).first()
        return (row.run, float(row.risk)) if row else None

    def export_member(self, pseudonym: str) -> list[dict[str, Any]]:
        """The member's vertical scores (access requests)."""
        s = VerticalScoreRow.__table__
        with self.engine.connect() as conn:
            rows = conn.execute(select(s).where(s.c.member == pseudonym).order_by(s.c.at)).mappings().all()
        return [{"run": r["run"], "risk": r["risk"], "at": _aware(r["at"]).isoformat()} for r in rows]

    def erase_member(self, pseudonym: str) -> int:
        """Delete the member's vertical scores and any alignment of a run under way (erasure)."""
        s, a = VerticalScoreRow.__table__, AlignmentRow.__table__
        with self.engine.begin() as conn:
            gone = conn.execute(delete(s).where(s.c.member == pseudonym)).rowcount
            return int(gone + conn.execute(delete(a).where(a.c.member == pseudonym)).rowcount)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class AlignmentRow(SQLModel, table=True):
    """A member's alignment id in a run with one partner: kept only until the run is recorded."""

    __tablename__ = "vertical_alignment"
    run: str = Field(primary_key=True, max_length=200)
    align_id: str = Field(primary_key=True, max_length=64)
    peer: str = Field(max_length=200)
    member: str = Field(max_length=64, index=True)  # pseudonym


class AlignmentStore:
    """Alignments between a PSI run and the training that follows it (the partner's SuperNode may be
    another process than the node that answered the PSI calls)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def save(self, run: str, peer: str, ids: dict[str, str]) -> None:
        """Keep ``ids`` (alignment id -> member pseudonym) for ``run`` with ``peer``, replacing any earlier."""
        t = AlignmentRow.__table__
        with self.engine.begin() as conn:
            conn.execute(delete(t).where(t.c.run == run, t.c.peer == peer))
            if ids:
                rows = [{"run": run, "align_id": a, "peer": peer, "member": m} for a, m in ids.items()]
                conn.execute(insert(t), rows)

    def load(self, run: str) -> dict[str, str]:
        """The run's alignment ids -> member pseudonyms (empty if there is none)."""
        t = AlignmentRow.__table__
        with self.engine.connect() as conn:
            return {r.align_id: r.member for r in conn.execute(select(t.c.align_id, t.c.member).where(t.c.run == run))}

    def by_peer(self, run: str) -> dict[str, dict[str, str]]:
        """The run's alignments with each peer: peer -> alignment id -> member pseudonym."""
        t = AlignmentRow.__table__
        out: dict[str, dict[str, str]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(select(t.c.peer, t.c.align_id, t.c.member).where(t.c.run == run)):
                out.setdefault(r.peer, {})[r.align_id] = r.member
        return out

    def drop(self, member: str, peer: str | None = None) -> int:
        """Drop the member's alignments with ``peer`` (with every peer: None) in runs under way: a withdrawal,
        or an erasure at that brand, takes them out of a run already aligned."""
        t = AlignmentRow.__table__
        query = delete(t).where(t.c.member == member)
        with self.engine.begin() as conn:
            return int(conn.execute(query if peer is None else query.where(t.c.peer == peer)).rowcount)

    def forget(self, run: str) -> None:
        """Drop the run's alignment (it means nothing once the run is over)."""
        t = AlignmentRow.__table__
        with self.engine.begin() as conn:
            conn.execute(delete(t).where(t.c.run == run))
