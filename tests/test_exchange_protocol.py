"""The exchange protocol's state machines: under any delivery order, loss, duplication or timeout,
an exchange ends confirmed with exactly one credit, or cancelled with exactly one refund."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.exchange.protocol import (
    Action,
    DestinationState,
    ProtocolError,
    SourceEvent,
    SourceState,
    on_cancel,
    on_credit,
    pending_action,
    source_step,
)


def test_a_credit_confirms_and_records_the_exchange() -> None:
    step = source_step(SourceState.HELD, SourceEvent.CREDITED)
    assert (step.state, step.actions) == (SourceState.CONFIRMED, (Action.APPEND_LOG,))


def test_a_refusal_cancels_and_refunds() -> None:
    assert source_step(SourceState.HELD, SourceEvent.REFUSED).actions == (Action.REFUND,)


def test_a_timeout_asks_the_destination_to_cancel() -> None:
    assert source_step(SourceState.HELD, SourceEvent.TIMED_OUT).state is SourceState.CANCELLING


def test_a_credit_that_won_the_race_with_a_cancel_stands() -> None:
    assert source_step(SourceState.CANCELLING, SourceEvent.CREDITED).state is SourceState.CONFIRMED


@pytest.mark.parametrize(
    ("state", "event"),
    [(SourceState.CANCELLED, SourceEvent.CREDITED), (SourceState.CONFIRMED, SourceEvent.TOMBSTONED)],
)
def test_an_impossible_answer_is_a_protocol_error(state: SourceState, event: SourceEvent) -> None:
    with pytest.raises(ProtocolError):
        source_step(state, event)


def test_the_destination_credits_once_and_answers_retries_the_same() -> None:
    first = on_credit(None, acceptable=True)
    assert (first.answer, first.write) == (SourceEvent.CREDITED, DestinationState.CREDITED)
    again = on_credit(DestinationState.CREDITED, acceptable=True)
    assert (again.answer, again.write) == (SourceEvent.CREDITED, None)


def test_a_tombstone_refuses_a_late_credit() -> None:
    assert on_cancel(None).write is DestinationState.TOMBSTONED
    late = on_credit(DestinationState.TOMBSTONED, acceptable=True)
    assert (late.answer, late.write) == (SourceEvent.TOMBSTONED, None)


def test_recovery_resends_what_the_state_says_is_pending() -> None:
    assert pending_action(SourceState.HELD) is Action.SEND_CREDIT
    assert pending_action(SourceState.CANCELLING) is Action.SEND_CANCEL
    assert pending_action(SourceState.CONFIRMED) is Action.NOTHING


# --- a simulated network: any interleaving, loss, duplication, timeouts and source restarts ---


@settings(max_examples=400)
@given(st.booleans(), st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=60))
def test_every_schedule_ends_with_one_credit_or_one_refund(acceptable: bool, schedule: list[int]) -> None:
    source = SourceState.HELD
    destination: DestinationState | None = None
    to_destination: list[str] = ["credit"]  # requests in flight (any order)
    to_source: list[SourceEvent] = []  # answers in flight
    credits = refunds = 0

    def apply(event: SourceEvent) -> None:
        nonlocal source, refunds
        step = source_step(source, event)  # raises on an impossible answer: the property fails
        source = step.state
        refunds += Action.REFUND in step.actions
        if Action.SEND_CANCEL in step.actions:
            to_destination.append("cancel")

    def deliver_request(i: int) -> None:
        nonlocal destination, credits
        request = to_destination.pop(i % len(to_destination))
        answer = on_credit(destination, acceptable) if request == "credit" else on_cancel(destination)
        if answer.write is not None:
            credits += answer.write is DestinationState.CREDITED
            destination = answer.write
        to_source.append(answer.answer)

    for choice in schedule:
        if choice == 0 and to_destination:
            deliver_request(len(schedule))
        elif choice == 1 and to_source:
            apply(to_source.pop(0))
        elif choice == 2 and to_destination:
            to_destination.pop(0)  # lost request
        elif choice == 3 and to_source:
            to_source.append(to_source[0])  # duplicated answer
        elif choice == 4 and source in (SourceState.HELD, SourceState.CANCELLING):
            apply(SourceEvent.TIMED_OUT)
        elif choice == 5:  # the source restarts and resends what its state says
            action = pending_action(source)
            if action is Action.SEND_CREDIT:
                to_destination.append("credit")
            elif action is Action.SEND_CANCEL:
                to_destination.append("cancel")
    # drain: the network eventually delivers, and timeouts keep asking until there is an answer
    for _ in range(50):
        if source in (SourceState.CONFIRMED, SourceState.CANCELLED) and not to_source:
            break
        if to_destination:
            deliver_request(0)
        elif to_source:
            apply(to_source.pop(0))
        else:
            apply(SourceEvent.TIMED_OUT)
    assert source in (SourceState.CONFIRMED, SourceState.CANCELLED)
    assert credits <= 1
    if source is SourceState.CONFIRMED:
        assert (destination, credits, refunds) == (DestinationState.CREDITED, 1, 0)
    else:
        assert (destination, credits, refunds) == (DestinationState.TOMBSTONED, 0, 1)
