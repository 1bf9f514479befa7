"""Human review of automated decisions (PIPL Art. 24 para. 3): a member contests, a person decides.

A review is a rights request of kind ``review`` (:mod:`compliance.rights`), so it has the same
15-working-day deadline, the same staff queue, the same daily escalation and the same audit steps
(``dsr.received`` … ``dsr.completed``) as the other requests; this module adds what is particular to
it: the decision contested, the member's statement and the reviewer's verdict, kept in
``compliance_adm_review`` next to the request. While a review is open its decision is not final: the
services that serve decisions of that kind say so (``pending``) until a named person has recorded
the outcome, ``upheld`` or ``changed`` to another of the decision's possible results, with reasons.
The verdict is audited as ``adm.human_review`` with the request's completion, in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine, Text, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Column, Field, SQLModel

from compliance.decisions import Decision, DecisionStore
from compliance.rights import RequestKind, RightsRequest, Step
from compliance.rights_service import COMPLAINT_ROUTE, RightsService
from compliance.store import RightsRequestRow

MAX_TEXT = 2000  # a statement or the reviewer's reasons


class ReviewOutcome(StrEnum):
    """What the person who reviewed the decision found."""

    UPHELD = "upheld"  # the decision stands as made
    CHANGED = "changed"  # the decision is replaced by another of its possible results


class ReviewRefused(Exception):
    """A contest or a verdict that cannot be taken, and why (``reason``: ``unknown_decision`` …)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ReviewRow(SQLModel, table=True):
    """What a review adds to its rights request: the decision, the statement, then the verdict."""

    __tablename__ = "compliance_adm_review"
    dsr_id: str = Field(primary_key=True, max_length=32)
    decision_id: str = Field(index=True, unique=True, max_length=32)  # one review per decision
    statement: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    outcome: str | None = Field(default=None, max_length=20)
    changed_to: str | None = Field(default=None, max_length=50)
    reviewer: str | None = Field(default=None, max_length=250)
    reasons: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    decided_at: datetime | None = None


@dataclass(frozen=True)
class Verdict:
    """The outcome a named person recorded, with their reasons."""

    outcome: ReviewOutcome
    reviewer: str
    reasons: str
    decided_at: datetime
    changed_to: str | None = None


def check_verdict(decision: Decision, outcome: ReviewOutcome, reasons: str, changed_to: str | None) -> None:
    """Refuse a verdict that does not say why, or a change that changes nothing (pure)."""
    if not reasons.strip():
        raise ReviewRefused("reasons_missing", "a verdict gives the reviewer's reasons")
    if len(reasons) > MAX_TEXT:
        raise ReviewRefused("reasons_too_long", f"the reasons are at most {MAX_TEXT} characters")
    if outcome is ReviewOutcome.UPHELD:
        if changed_to is not None:
            raise ReviewRefused("changed_to_with_upheld", "an upheld decision is not changed: leave changed_to out")
        return
    if changed_to is None:
        raise ReviewRefused("changed_to_missing", f"a changed decision names its new result: one of {decision.choices}")
    if changed_to not in decision.choices:
        raise ReviewRefused("not_a_choice", f"{changed_to!r} is not a result of this decision: {decision.choices}")
    if changed_to == decision.result:
        raise ReviewRefused("unchanged_result", f"the decision already is {changed_to!r}: the outcome is upheld")


@dataclass(frozen=True)
class Review:
    """A contested decision, its request (deadline, steps) and, once decided, the verdict."""

    request: RightsRequest
    decision: Decision
    statement: str | None
    verdict: Verdict | None

    @property
    def review_id(self) -> str:
        """The review's id: its rights request's."""
        return self.request.dsr_id

    @property
    def status(self) -> str:
        """``pending`` until a person decides, then the outcome; ``closed`` if it ended without one."""
        if self.verdict is not None:
            return self.verdict.outcome.value
        return "closed" if self.request.state is Step.REFUSED else "pending"

    @property
    def pending(self) -> bool:
        """Still waiting for a person: its decision is not final."""
        return self.status == "pending"

    def note(self) -> dict[str, Any]:
        """The short form shown with a decision of its kind: where the review stands."""
        return {
            "id": self.review_id,
            "decision_id": self.decision.decision_id,
            "status": self.status,
            "deadline": self.request.deadline.isoformat(),
            "changed_to": self.verdict.changed_to if self.verdict else None,
        }

    def as_json(self, today: date, staff: bool = False) -> dict[str, Any]:
        """The review for the member (``staff``: with the member's pseudonym, lateness and the reviewer)."""
        verdict = None
        if self.verdict is not None:
            v = self.verdict
            verdict = {
                "outcome": v.outcome.value,
                "changed_to": v.changed_to,
                "reasons": v.reasons,
                "decided_at": v.decided_at.isoformat(),
                "on_time": v.decided_at.date() <= self.request.deadline,
            } | ({"reviewer": v.reviewer} if staff else {})
        view = {
            "id": self.review_id,
            "status": self.status,
            "received_at": self.request.received_at.isoformat(),
            "deadline": self.request.deadline.isoformat(),
            "decision": self.decision.as_json(),
            "statement": self.statement,
            "verdict": verdict,
            "complaint_route": COMPLAINT_ROUTE,
        }
        if staff:
            view |= {"member": self.request.member, "overdue": self.request.overdue(today)}
        return view


class ReviewStore:
    """The reviews' own rows; a rights data source (exported on access, deleted on erasure)."""

    name = "decision_reviews"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, conn: Connection, dsr_id: str, decision_id: str, statement: str | None) -> None:
        """Record a contest, inside its request's receipt transaction."""
        values = {"dsr_id": dsr_id, "decision_id": decision_id, "statement": statement}
        conn.execute(insert(ReviewRow.__table__).values(**values))

    def decide(self, conn: Connection, dsr_id: str, verdict: Verdict) -> None:
        """Record the verdict, once (:class:`ReviewRefused` ``already_decided`` if another came first)."""
        t = ReviewRow.__table__
        done = conn.execute(
            update(t)
            .where(t.c.dsr_id == dsr_id, t.c.outcome.is_(None))
            .values(
                outcome=verdict.outcome.value,
                changed_to=verdict.changed_to,
                reviewer=verdict.reviewer,
                reasons=verdict.reasons,
                decided_at=verdict.decided_at,
            )
        ).rowcount
        if not done:
            raise ReviewRefused("already_decided", f"review {dsr_id} already has its outcome")

    def rows(self, dsr_ids: list[str] | None = None, decision_id: str | None = None) -> list[Any]:
        """Review rows: all, those of ``dsr_ids``, or the one of ``decision_id``."""
        t = ReviewRow.__table__
        query = select(t)
        if dsr_ids is not None:
            query = query.where(t.c.dsr_id.in_(dsr_ids))
        if decision_id is not None:
            query = query.where(t.c.decision_id == decision_id)
        with self.engine.connect() as conn:
            return list(conn.execute(query).all())

    def _of_member(self, pseudonym: str) -> Any:
        rq = RightsRequestRow.__table__
        return select(rq.c.dsr_id).where(rq.c.member == pseudonym, rq.c.kind == RequestKind.REVIEW.value)

    def export_member(self, pseudonym: str) -> list[dict[str, Any]]:
        """The member's reviews: decision, statement and outcome (an access request's part)."""
        t = ReviewRow.__table__
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c.dsr_id.in_(self._of_member(pseudonym)))).all()
        return [
            {
                "review_id": r.dsr_id,
                "decision_id": r.decision_id,
                "statement": r.statement,
                "outcome": r.outcome,
                "changed_to": r.changed_to,
                "reasons": r.reasons,
                "decided_at": _aware(r.decided_at).isoformat() if r.decided_at else None,
            }
            for r in rows
        ]

    def erase_member(self, pseudonym: str) -> int:
        """Delete the member's reviews (statements and reasons); the requests' steps stay, unlinkable."""
        t = ReviewRow.__table__
        with self.engine.begin() as conn:
            return conn.execute(delete(t).where(t.c.dsr_id.in_(self._of_member(pseudonym)))).rowcount


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass
class ReviewService:
    """Contests by members, the staff queue and verdicts, on the rights-request machinery."""

    rights: RightsService
    decisions: DecisionStore
    store: ReviewStore

    def contest(self, member_ref: str, decision_id: str, statement: str | None = None) -> Review:
        """The member asks a person to review one of their decisions (received and verified, audited).

        :class:`ReviewRefused`: ``unknown_decision`` for a decision that is not the member's (whether or
        not it exists), ``already_contested`` for one already under review or reviewed,
        ``statement_too_long``.
        """
        member = self.rights.consent.member_pseudonym(member_ref)
        decision = self.decisions.get(decision_id)
        if decision is None or decision.member != member:
            raise ReviewRefused("unknown_decision", f"you have no decision {decision_id}")
        if found := self.store.rows(decision_id=decision_id):
            raise ReviewRefused("already_contested", f"decision {decision_id} is already reviewed in {found[0].dsr_id}")
        text = (statement or "").strip() or None
        if text is not None and len(text) > MAX_TEXT:
            raise ReviewRefused("statement_too_long", f"a statement is at most {MAX_TEXT} characters")
        try:
            req = self.rights.open_request(
                member_ref,
                RequestKind.REVIEW,
                details={"decision_id": decision_id, "decision_kind": decision.kind},
                then=lambda conn, r: self.store.add(conn, r.dsr_id, decision_id, text),
            )
        except IntegrityError as exc:  # a contest of the same decision committed first: nothing of this one stays
            raise ReviewRefused("already_contested", f"decision {decision_id} is already under review") from exc
        return Review(req, decision, text, None)

    def decide(
        self,
        review_id: str,
        outcome: ReviewOutcome,
        reviewer: str,
        reasons: str,
        changed_to: str | None = None,
        now: datetime | None = None,
    ) -> Review:
        """Record a person's verdict on an open review: the request completes and ``adm.human_review``
        is audited with it, in one transaction; :class:`ReviewRefused` for a verdict that cannot stand."""
        review = self.get(review_id)
        if not review.pending:
            raise ReviewRefused("already_decided", f"review {review_id} is {review.status}")
        check_verdict(review.decision, outcome, reasons, changed_to)
        verdict = Verdict(outcome, reviewer, reasons.strip(), now or datetime.now(UTC), changed_to)
        decision = review.decision
        event = {
            "subject_pseudo_ids": [decision.member],
            "dsr_id": review_id,
            "details": {
                "decision_id": decision.decision_id,
                "decision_kind": decision.kind,
                "outcome": outcome.value,
                "changed_from": decision.result,
                "changed_to": changed_to,
                "on_time": verdict.decided_at.date() <= review.request.deadline,
            },
        }
        req = self.rights.complete_request(
            review.request,
            details={"decision_id": decision.decision_id, "outcome": outcome.value},
            also=[("adm.human_review", event)],
            then=lambda conn: self.store.decide(conn, review_id, verdict),
        )
        return Review(req, decision, review.statement, verdict)

    def get(self, review_id: str, member_ref: str | None = None) -> Review:
        """The review ``review_id`` (only if it is ``member_ref``'s, when given), else ``unknown_review``."""
        member = None if member_ref is None else self.rights.consent.member_pseudonym(member_ref)
        found = self._reviews(member, [review_id])
        if not found:
            raise ReviewRefused("unknown_review", f"there is no review {review_id}")
        return found[0]

    def queue(self) -> list[Review]:
        """Reviews waiting for a person, earliest deadline first (overdue ones at the top)."""
        return sorted(
            (r for r in self._reviews() if r.pending), key=lambda r: (r.request.deadline, r.request.received_at)
        )

    def latest_by_member(self, kind: str) -> dict[str, Review]:
        """Each member's newest review of a decision of ``kind``, by pseudonym."""
        latest: dict[str, Review] = {}
        for r in self._reviews():  # oldest first: a newer one replaces it
            if r.decision.kind == kind:
                latest[r.request.member] = r
        return latest

    def latest(self, member: str, kind: str) -> Review | None:
        """The member's newest review of a decision of ``kind``, if any (a pending one: not final)."""
        mine = [r for r in self._reviews(member) if r.decision.kind == kind]
        return mine[-1] if mine else None

    def audited(self, review: Review) -> bool:
        """Whether the decision's record is the one its ``adm.decide`` event pinned (by SHA-256)."""
        digest = review.decision.sha256()
        return any(
            e.get("action") == "adm.decide"
            and e.get("details", {}).get("decision_id") == review.decision.decision_id
            and e.get("details", {}).get("record_sha256") == digest
            for e in self.rights.events_about(review.decision.member)
        )

    def _reviews(self, member: str | None = None, only: list[str] | None = None) -> list[Review]:
        requests = [
            r
            for r in self.rights.consent.store.requests(member)
            if r.kind is RequestKind.REVIEW and (only is None or r.dsr_id in only)
        ]
        rows = {row.dsr_id: row for row in self.store.rows([r.dsr_id for r in requests])}
        decisions = self.decisions.many([row.decision_id for row in rows.values()])
        reviews = []
        for req in requests:
            row = rows.get(req.dsr_id)
            decision = decisions.get(row.decision_id) if row is not None else None
            if row is None or decision is None:  # erased with the member
                continue
            verdict = None
            if row.outcome is not None:
                verdict = Verdict(
                    ReviewOutcome(row.outcome), row.reviewer, row.reasons, _aware(row.decided_at), row.changed_to
                )
            reviews.append(Review(req, decision, row.statement, verdict))
        return reviews
