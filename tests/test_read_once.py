"""One read per record per request: what a read-once scope keeps, and what it must never hide."""

from __future__ import annotations

import threading
from datetime import date
from pathlib import Path

import pytest
from compliance_fixtures import consent_service

from compliance.consent import ConsentAction
from compliance.read_once import forget, memoised, read_once
from compliance.service import ConsentDenied, ConsentService

PURPOSE = "points_exchange:coffee.example"


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        return self.calls


@pytest.fixture
def service(tmp_path: Path) -> ConsentService:
    svc = consent_service(tmp_path)
    svc.register_member("M-1", date(1990, 5, 1))
    svc.change("M-1", [PURPOSE], ConsentAction.GRANT)
    return svc


def test_outside_a_scope_every_read_goes_to_the_source() -> None:
    read = Counter()
    assert [memoised("k", read), memoised("k", read)] == [1, 2]


def test_inside_a_scope_a_record_is_read_once() -> None:
    read = Counter()
    with read_once():
        assert [memoised("k", read), memoised("k", read)] == [1, 1]
    assert memoised("k", read) == 2


def test_a_nested_scope_keeps_the_outer_view() -> None:
    read = Counter()
    with read_once():
        memoised("k", read)
        with read_once():
            assert memoised("k", read) == 1


def test_forget_makes_the_next_read_fresh() -> None:
    read = Counter()
    with read_once():
        memoised("k", read)
        forget()
        assert memoised("k", read) == 2


def test_a_failed_read_is_not_kept() -> None:
    def fail() -> int:
        raise LookupError("gone")

    with read_once():
        with pytest.raises(LookupError):
            memoised("k", fail)
        assert memoised("k", Counter()) == 1


def test_a_withdrawal_inside_the_scope_counts_at_once(service: ConsentService) -> None:
    with read_once():
        service.check("M-1", PURPOSE)
        service.change("M-1", [PURPOSE], ConsentAction.WITHDRAW)
        with pytest.raises(ConsentDenied):
            service.check("M-1", PURPOSE)


def test_a_withdrawal_by_another_request_counts_from_the_next_scope(service: ConsentService) -> None:
    elsewhere = threading.Thread(target=service.change, args=("M-1", [PURPOSE], ConsentAction.WITHDRAW))
    with read_once():
        service.check("M-1", PURPOSE)
        elsewhere.start()
        elsewhere.join()
        service.check("M-1", PURPOSE)  # this request decided on the view it first read
    with read_once(), pytest.raises(ConsentDenied):
        service.check("M-1", PURPOSE)
