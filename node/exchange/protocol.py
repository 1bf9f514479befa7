"""The two-node exchange protocol as pure state machines: try / confirm / cancel with tombstones.

The source **holds** the member's points (a wallet entry with the exchange id as its ref) and
keeps an outbox message "credit" for the destination. The destination **credits** idempotently
on the exchange id, or refuses. The source **confirms** on a credit, or **cancels** on a refusal
(refunding the hold). When the source cannot learn the outcome (timeouts, crashes), it asks the
destination to cancel: a destination that already credited says so and the source confirms; one
that did not writes a **tombstone**, after which a late credit request can never land. Every
transition is journaled by the caller before any message is sent, so recovery after a crash is
just "resend what the state says is pending".

Nothing here does I/O: the node feeds events in and carries out the returned actions.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from node.core.refusals import Refused


class SourceState(StrEnum):
    """Where an exchange stands at its source."""

    HELD = "held"  # points taken from the wallet; the credit request is pending
    CANCELLING = "cancelling"  # outcome unknown: asking the destination to cancel
    CONFIRMED = "confirmed"  # the destination credited: final
    CANCELLED = "cancelled"  # the destination refused or tombstoned: refunded, final


class DestinationState(StrEnum):
    """Where an exchange stands at its destination."""

    CREDITED = "credited"  # final
    TOMBSTONED = "tombstoned"  # cancelled before any credit: final, refuses late credits


class SourceEvent(StrEnum):
    """What the source learns."""

    CREDITED = "credited"  # the destination answered: credited (now or earlier)
    REFUSED = "refused"  # the destination answered: refused (bad quote, no link, no consent ...)
    TOMBSTONED = "tombstoned"  # the destination answered a cancel: cancelled, never credited
    TIMED_OUT = "timed_out"  # no answer in time, or the source restarted mid-call


class Action(StrEnum):
    """What the source must do next (after journaling the new state)."""

    SEND_CREDIT = "send_credit"
    SEND_CANCEL = "send_cancel"
    REFUND = "refund"
    APPEND_LOG = "append_log"  # record the committed exchange on the exchange log
    NOTHING = "nothing"


class ProtocolError(Refused):
    """An event that cannot happen in this state (a bug or a lying peer); ``reason`` says which."""


@dataclass(frozen=True)
class Step:
    """A transition's result."""

    state: SourceState
    actions: tuple[Action, ...]


_SOURCE: dict[tuple[SourceState, SourceEvent], Step] = {
    (SourceState.HELD, SourceEvent.CREDITED): Step(SourceState.CONFIRMED, (Action.APPEND_LOG,)),
    (SourceState.HELD, SourceEvent.REFUSED): Step(SourceState.CANCELLED, (Action.REFUND,)),
    (SourceState.HELD, SourceEvent.TIMED_OUT): Step(SourceState.CANCELLING, (Action.SEND_CANCEL,)),
    # a cancel raced a credit that landed first: the credit wins, never a double spend
    (SourceState.CANCELLING, SourceEvent.CREDITED): Step(SourceState.CONFIRMED, (Action.APPEND_LOG,)),
    (SourceState.CANCELLING, SourceEvent.TOMBSTONED): Step(SourceState.CANCELLED, (Action.REFUND,)),
    (SourceState.CANCELLING, SourceEvent.REFUSED): Step(SourceState.CANCELLED, (Action.REFUND,)),
    (SourceState.CANCELLING, SourceEvent.TIMED_OUT): Step(SourceState.CANCELLING, (Action.SEND_CANCEL,)),
    # late or repeated answers after the end change nothing
    (SourceState.CONFIRMED, SourceEvent.CREDITED): Step(SourceState.CONFIRMED, (Action.NOTHING,)),
    (SourceState.CONFIRMED, SourceEvent.TIMED_OUT): Step(SourceState.CONFIRMED, (Action.NOTHING,)),
    (SourceState.CANCELLED, SourceEvent.TOMBSTONED): Step(SourceState.CANCELLED, (Action.NOTHING,)),
    (SourceState.CANCELLED, SourceEvent.REFUSED): Step(SourceState.CANCELLED, (Action.NOTHING,)),
    (SourceState.CANCELLED, SourceEvent.TIMED_OUT): Step(SourceState.CANCELLED, (Action.NOTHING,)),
}


def source_step(state: SourceState, event: SourceEvent) -> Step:
    """The source's next state and actions, or :class:`ProtocolError` for an impossible event.

    Impossible: a credit after the source cancelled and refunded (the destination tombstoned or
    refused, so it cannot have credited), and a tombstone after a confirmed credit.
    """
    step = _SOURCE.get((state, event))
    if step is None:
        raise ProtocolError("impossible_event", f"an exchange that is {state.value} cannot be {event.value}")
    return step


def pending_action(state: SourceState) -> Action:
    """What recovery resends for an exchange found in ``state`` after a restart."""
    return {
        SourceState.HELD: Action.SEND_CREDIT,  # the destination credits idempotently
        SourceState.CANCELLING: Action.SEND_CANCEL,
        SourceState.CONFIRMED: Action.NOTHING,
        SourceState.CANCELLED: Action.NOTHING,
    }[state]


@dataclass(frozen=True)
class Answer:
    """The destination's answer to a request, and whether it must write something first."""

    answer: SourceEvent
    write: DestinationState | None  # the state to record (in the same transaction as any credit)


def on_credit(existing: DestinationState | None, acceptable: bool) -> Answer:
    """Answer a credit request, given what is recorded for the exchange id and whether the quote,
    link and consent check out."""
    if existing is DestinationState.CREDITED:
        return Answer(SourceEvent.CREDITED, None)  # a retry: the same answer, no second credit
    if existing is DestinationState.TOMBSTONED:
        return Answer(SourceEvent.TOMBSTONED, None)  # cancelled earlier: a late credit never lands
    if not acceptable:
        return Answer(SourceEvent.REFUSED, DestinationState.TOMBSTONED)  # refuse for good
    return Answer(SourceEvent.CREDITED, DestinationState.CREDITED)


def on_cancel(existing: DestinationState | None) -> Answer:
    """Answer a cancel request: a credit already made stands; otherwise leave a tombstone."""
    if existing is DestinationState.CREDITED:
        return Answer(SourceEvent.CREDITED, None)
    if existing is DestinationState.TOMBSTONED:
        return Answer(SourceEvent.TOMBSTONED, None)
    return Answer(SourceEvent.TOMBSTONED, DestinationState.TOMBSTONED)
