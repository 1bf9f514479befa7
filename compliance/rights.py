"""Data subject rights requests (PIPL Arts. 44-47, 50): lifecycle, deadlines, and what each does.

A request is received, then verified (the member's own authenticated app, or staff), then
completed or refused with a reason code and the complaint route. The state is derived from its
append-only steps; the deadline is 15 working days from receipt (the standards' figure for
deletion, correction and account closure, applied to every kind here: the stricter reading).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

DEADLINE_WORKING_DAYS = 15


class RequestKind(StrEnum):
    """What the member asks for."""

    ACCESS = "access"  # see and copy everything held, machine-readable
    CORRECTION = "correction"
    ERASURE = "erasure"  # crypto-shredding: data and key deleted, ledger entries become unlinkable
    REVIEW = "review"  # a human review of an automated decision (Art. 24 para. 3): compliance.reviews
    PORTABILITY = "portability"  # the member's data sent to, or received from, a brand they name (Art. 45(3))


class Step(StrEnum):
    """Lifecycle steps, each audited as ``dsr.<step>``."""

    RECEIVED = "received"
    VERIFIED = "verified"
    COMPLETED = "completed"
    REFUSED = "refused"


_NEXT = {
    None: {Step.RECEIVED},
    Step.RECEIVED: {Step.VERIFIED, Step.REFUSED},
    Step.VERIFIED: {Step.COMPLETED, Step.REFUSED},
    Step.COMPLETED: set(),
    Step.REFUSED: set(),
}


class LifecycleError(ValueError):
    """A step that does not follow from the request's current state."""


def working_days_after(start: date, days: int) -> date:
    """The date ``days`` working days (Monday-Friday) after ``start``.

    Public holidays are not modelled (they move every year by State Council notice), so the
    deadline errs on the early side.
    """
    day, left = start, days
    while left > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            left -= 1
    return day


@dataclass(frozen=True)
class StepRecord:
    """One step of one request."""

    dsr_id: str
    step: Step
    at: datetime
    reason_code: str | None = None


@dataclass(frozen=True)
class RightsRequest:
    """A request and its derived state."""

    dsr_id: str
    member: str  # pseudonym
    kind: RequestKind
    received_at: datetime
    steps: tuple[StepRecord, ...] = field(default=())

    @property
    def state(self) -> Step | None:
        """The latest step."""
        return self.steps[-1].step if self.steps else None

    @property
    def deadline(self) -> date:
        """When the request must be completed or refused."""
        return working_days_after(self.received_at.date(), DEADLINE_WORKING_DAYS)

    def overdue(self, today: date) -> bool:
        """Still open after its deadline (escalate)."""
        return self.state not in (Step.COMPLETED, Step.REFUSED) and today > self.deadline

    def advance(self, step: Step, at: datetime | None = None, reason_code: str | None = None) -> RightsRequest:
        """A copy with one more step, or :class:`LifecycleError`."""
        if step not in _NEXT[self.state]:
            raise LifecycleError(f"request {self.dsr_id} is {self.state}, it cannot become {step}")
        if step is Step.REFUSED and not reason_code:
            raise LifecycleError("a refusal needs a reason code")
        record = StepRecord(self.dsr_id, step, at or datetime.now(UTC), reason_code)
        return RightsRequest(self.dsr_id, self.member, self.kind, self.received_at, (*self.steps, record))


def new_request(member: str, kind: RequestKind, at: datetime | None = None) -> RightsRequest:
    """A freshly received request."""
    received = at or datetime.now(UTC)
    req = RightsRequest(uuid.uuid4().hex, member, kind, received)
    return req.advance(Step.RECEIVED, received)


def rebuild(member: str, kind: RequestKind, steps: Iterable[StepRecord]) -> RightsRequest:
    """Derive a request from its stored steps (checking they form a valid lifecycle)."""
    ordered = sorted(steps, key=lambda s: s.at)
    if not ordered or ordered[0].step is not Step.RECEIVED:
        raise LifecycleError("a request starts with its receipt")
    req = RightsRequest(ordered[0].dsr_id, member, kind, ordered[0].at)
    for s in ordered:
        req = req.advance(s.step, s.at, s.reason_code)
    return req
