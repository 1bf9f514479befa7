"""Purposes, notices and consent decisions: the pure core of PIPL consent."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta

import pytest
from compliance_fixtures import BASE_NOTICE, notice_data

from compliance.consent import ConsentAction, Reason, age_on, decide, is_minor, record
from compliance.notices import NoticeError, covers, parse_notice
from compliance.purposes import PurposeError, catalogue

NOW = datetime(2026, 11, 22, tzinfo=UTC)
V1 = parse_notice(notice_data())


def _decide(records, code, *, current=V1, minor=False):  # type: ignore[no-untyped-def]
    return decide(
        records,
        catalogue().purpose(code),
        now=NOW,
        current_notice=current,
        notices={1: V1, current.version: current},
        minor=minor,
    )


# --- purposes ---------------------------------------------------------------------------------


def test_unknown_purposes_are_refused() -> None:
    with pytest.raises(PurposeError):
        catalogue().purpose("sell_everything")


def test_exchange_consent_is_per_named_brand() -> None:
    p = catalogue().purpose("points_exchange:coffee.alliance.example")
    assert p.parameter == "coffee.alliance.example"
    assert p.consent.value == "separate"
    with pytest.raises(PurposeError):
        catalogue().purpose("points_exchange:")


def test_sensitive_consent_names_a_sensitive_category() -> None:
    assert catalogue().purpose("sensitive:location.precise").pi_categories == ("location.precise",)
    with pytest.raises(PurposeError):
        catalogue().purpose("sensitive:purchase.history")


def test_core_loyalty_rests_on_contract_and_needs_no_consent() -> None:
    assert not catalogue().purpose("loyalty.core").needs_consent


# --- notices ----------------------------------------------------------------------------------


def test_a_complete_notice_is_publishable() -> None:
    assert V1.version == 1
    assert len(V1.sha256()) == 64


@pytest.mark.parametrize(
    "path",
    [
        ("handler", "name"),
        ("handler", "contact"),
        ("rights", "access"),
        ("rights", "get_copy"),
        ("rights", "transfer"),
        ("rights", "correct"),
        ("rights", "delete"),
        ("rights", "restrict"),
        ("rights", "close_account"),
        ("rights", "withdraw_consent"),
        ("rights", "complaint"),
        ("purposes", "joint_modeling", "retention"),
        ("purposes", "joint_modeling", "at_expiry"),
        ("purposes", "joint_modeling", "methods"),
        ("purposes", "joint_modeling", "pi_categories"),
        ("pi_collected",),
        ("language",),
    ],
)
def test_a_notice_missing_a_required_field_is_rejected(path: tuple[str, ...]) -> None:
    data = copy.deepcopy(BASE_NOTICE)
    target = data
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    with pytest.raises(NoticeError, match=path[-1]):
        parse_notice(data)


def test_a_notice_using_an_undeclared_category_is_rejected() -> None:
    with pytest.raises(NoticeError, match="pi_collected"):
        parse_notice(notice_data(pi_collected=["identity.pseudonym"]))


def test_the_notice_hash_is_stable_and_changes_with_the_text() -> None:
    assert parse_notice(notice_data()).sha256() == V1.sha256()
    assert parse_notice(notice_data(language="en")).sha256() != V1.sha256()


def _v2_adding_purchase_history_to_modeling():  # type: ignore[no-untyped-def]
    data = notice_data(version=2, changes="joint modeling now uses purchase history")
    data["purposes"]["joint_modeling"]["pi_categories"].append("purchase.history")
    data["pi_collected"].append("purchase.history")
    return parse_notice(data)


def test_a_new_category_widens_only_that_purpose() -> None:
    v2 = _v2_adding_purchase_history_to_modeling()
    assert v2.widened_purposes(V1) == {"joint_modeling"}
    assert not covers(V1, v2, "joint_modeling")
    assert covers(V1, v2, "personalization")


# --- consent decisions ----------------------------------------------------------------------


def _grant(code: str, notice=V1, **kw):  # type: ignore[no-untyped-def]
    return record("m", catalogue().purpose(code), ConsentAction.GRANT, notice, at=NOW - timedelta(days=1), **kw)


def test_nothing_optional_is_on_by_default() -> None:
    optional = catalogue().optional_codes(recipients=["b.example"], countries=["SG"])
    expected = {"points_exchange:b.example", "cross_border:SG", "joint_modeling", "personalization", "marketing"}
    assert expected <= set(optional)
    assert "loyalty.core" not in optional
    decisions = [_decide([], code) for code in optional]
    assert not any(d.allowed for d in decisions)
    assert {d.reason for d in decisions} == {Reason.NO_CONSENT}


def test_core_loyalty_is_allowed_without_any_record() -> None:
    decision = _decide([], "loyalty.core")
    assert decision.allowed
    assert decision.reason is Reason.CONTRACT_BASIS
    assert decision.consent_id is None


def test_a_grant_allows_exactly_its_purpose() -> None:
    records = [_grant("personalization")]
    assert _decide(records, "personalization").allowed
    assert not _decide(records, "marketing").allowed


def test_exchange_consent_for_one_brand_does_not_cover_another() -> None:
    records = [_grant("points_exchange:b.example")]
    assert _decide(records, "points_exchange:b.example").allowed
    assert not _decide(records, "points_exchange:c.example").allowed


def test_a_withdrawal_counts_from_the_next_decision() -> None:
    records = [_grant("joint_modeling")]
    records.append(record("m", catalogue().purpose("joint_modeling"), ConsentAction.WITHDRAW, V1, at=NOW))
    decision = _decide(records, "joint_modeling")
    assert not decision.allowed
    assert decision.reason is Reason.WITHDRAWN


def test_an_expired_consent_no_longer_counts() -> None:
    records = [_grant("marketing", expires_at=NOW - timedelta(seconds=1))]
    assert _decide(records, "marketing").reason is Reason.EXPIRED


def test_a_widened_purpose_is_blocked_until_renewed() -> None:
    v2 = _v2_adding_purchase_history_to_modeling()
    records = [_grant("joint_modeling")]
    assert _decide(records, "joint_modeling", current=v2).reason is Reason.RENEWAL_REQUIRED
    assert _decide([_grant("personalization")], "personalization", current=v2).allowed
    records.append(record("m", catalogue().purpose("joint_modeling"), ConsentAction.RENEW, v2, at=NOW))
    assert _decide(records, "joint_modeling", current=v2).allowed


def test_a_minor_needs_the_guardian_as_consenting_actor() -> None:
    assert _decide([_grant("marketing")], "marketing", minor=True).reason is Reason.GUARDIAN_REQUIRED
    assert _decide([_grant("marketing", actor="guardian:g1")], "marketing", minor=True).allowed


def test_contract_purposes_have_no_consent_to_record() -> None:
    with pytest.raises(ValueError, match="contract"):
        record("m", catalogue().purpose("loyalty.core"), ConsentAction.GRANT, V1)


@pytest.mark.parametrize(
    ("born", "day", "minor"),
    [
        (date(2012, 11, 23), date(2026, 11, 22), True),
        (date(2012, 11, 22), date(2026, 11, 22), False),
        (None, date(2026, 1, 1), False),
    ],
)
def test_under_14_is_counted_in_whole_years(born: date | None, day: date, minor: bool) -> None:
    assert is_minor(born, day) is minor
    if born:
        assert age_on(born, day) in (13, 14)
