"""Localisation and the egress check: PI stays home unless consent and a mechanism let it out."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from compliance.egress import (
    NON_PI,
    CrossBorderCounter,
    Destination,
    EgressPolicy,
    EgressReason,
    Mechanism,
    required_mechanism,
)
from ledger.storage import create_engine

TAGS = {"link_id": "identity.pseudonym", "points": "loyalty.transactions", "quote_id": NON_PI}
CN_PEER = Destination("coffee.example", "CN")
SG_PEER = Destination("sg.example", "SG")
OPEN = EgressPolicy(allowed_regions=frozenset({"CN", "SG"}))


def _check(policy=OPEN, dest=CN_PEER, fields=frozenset({"link_id", "points"}), **kw):  # type: ignore[no-untyped-def]
    args = {"purpose_consented": True, "cross_border_consented": True, "mechanism": None, "needed": Mechanism.NONE}
    return policy.check(dest, TAGS, set(fields), **(args | kw))


@pytest.mark.parametrize(
    ("general", "sensitive", "need"),
    [
        (99_999, 0, Mechanism.NONE),
        (100_000, 0, Mechanism.STANDARD_CONTRACT),
        (0, 1, Mechanism.STANDARD_CONTRACT),
        (999_999, 9_999, Mechanism.STANDARD_CONTRACT),
        (1_000_000, 0, Mechanism.SECURITY_ASSESSMENT),
        (0, 10_000, Mechanism.SECURITY_ASSESSMENT),
    ],
)
def test_the_thresholds_pick_the_mechanism(general: int, sensitive: int, need: Mechanism) -> None:
    assert required_mechanism(general, sensitive) is need


def test_the_counter_flips_at_100000_distinct_members_and_ignores_duplicates(tmp_path: Path) -> None:
    counter = CrossBorderCounter(create_engine(f"sqlite:///{tmp_path / 'x.db'}"))
    counter.create_schema()
    day = date(2026, 3, 1)
    counter.add({f"{i:032x}" for i in range(99_999)}, sensitive=False, day=day)
    counter.add({f"{i:032x}" for i in range(50_000)}, sensitive=False, day=day)  # all seen before
    assert counter.counts(2026) == (99_999, 0)
    assert counter.required(2026) is Mechanism.NONE
    counter.add({f"{99_999:032x}"}, sensitive=False, day=day)
    assert counter.required(2026) is Mechanism.STANDARD_CONTRACT
    assert counter.required(2027) is Mechanism.NONE  # counted from 1 January of the current year


def test_one_sensitive_record_abroad_needs_a_standard_contract(tmp_path: Path) -> None:
    counter = CrossBorderCounter(create_engine(f"sqlite:///{tmp_path / 'x.db'}"))
    counter.create_schema()
    counter.add({"a" * 32}, sensitive=True, day=date(2026, 5, 5))
    assert counter.required(2026) is Mechanism.STANDARD_CONTRACT


def test_a_payload_without_pi_may_go_to_an_allowed_region() -> None:
    assert _check(fields={"quote_id"}).reason is EgressReason.NO_PI


def test_an_undeclared_payload_field_is_refused() -> None:
    decision = _check(fields={"link_id", "phone"})
    assert not decision.allowed
    assert decision.reason is EgressReason.UNDECLARED_FIELD


def test_pi_to_a_domestic_peer_needs_the_purpose_consent() -> None:
    assert _check().allowed
    assert _check(purpose_consented=False).reason is EgressReason.NO_PURPOSE_CONSENT


def test_pi_to_a_region_outside_policy_is_refused() -> None:
    assert _check(policy=EgressPolicy(), dest=SG_PEER).reason is EgressReason.REGION_NOT_ALLOWED


def test_pi_abroad_needs_separate_consent_and_a_sufficient_mechanism() -> None:
    assert _check(dest=SG_PEER, cross_border_consented=False).reason is EgressReason.NO_CROSS_BORDER_CONSENT
    needs_scc = {"needed": Mechanism.STANDARD_CONTRACT}
    assert _check(dest=SG_PEER, **needs_scc).reason is EgressReason.NO_MECHANISM
    assert _check(dest=SG_PEER, mechanism=Mechanism.STANDARD_CONTRACT, **needs_scc).allowed
    assert _check(dest=SG_PEER, mechanism=Mechanism.SECURITY_ASSESSMENT, **needs_scc).allowed
    assert not _check(dest=SG_PEER, mechanism=Mechanism.STANDARD_CONTRACT, needed=Mechanism.SECURITY_ASSESSMENT).allowed


def test_an_unknown_destination_is_refused() -> None:
    assert _check(dest=None).reason is EgressReason.UNKNOWN_DESTINATION


def test_the_deploy_check_refuses_to_host_outside_mainland_china() -> None:
    from compliance.egress import hosting_problem

    assert hosting_problem("CN") is None
    for region in ("HK", "SG", "US"):
        assert "outside mainland China" in (hosting_problem(region) or "")
