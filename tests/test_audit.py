"""Audit events (PIPL-LOG-01): their canonical encoding, what they refuse, the trail, and filters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from compliance.audit import (
    ACTIONS,
    Actor,
    AuditEvent,
    AuditEventError,
    AuditFilter,
    AuditTrail,
    Recipient,
)
from ledger.storage import LedgerStore, Log, create_engine

NODE = "a.example"
ALICE = "0123456789abcdef0123456789abcdef"
BOB = "fedcba9876543210fedcba9876543210"
T0 = datetime(2026, 11, 1, tzinfo=UTC)
STAFF = Actor(type="staff", id="carol", role="compliance")


def ev(action: str = "consent.grant", **fields: object) -> AuditEvent:
    fields.setdefault("actor", STAFF)
    return AuditEvent(node_id=NODE, action=action, **fields)  # type: ignore[arg-type]


@pytest.fixture
def log(tmp_path: Path) -> Iterator[Log]:
    store = LedgerStore(create_engine(f"sqlite:///{tmp_path / 'node.db'}"))
    store.create_schema()
    yield store.create_log("audit", f"{NODE}/audit")
    store.close()


# --- encoding ---------------------------------------------------------------------------


def test_an_event_round_trips_through_its_canonical_bytes() -> None:
    e = ev(subject_pseudo_ids=[ALICE], purpose_code="marketing", details={"note": "café", "n": 2, "x": 1.5, "ok": True})
    data = e.to_bytes()
    obj = json.loads(data)
    assert data == json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    assert b"caf\\u00e9" in data
    assert obj["ts_utc"].endswith("Z")
    assert obj["dsr_id"] is None  # every field is present, absent ones as null
    assert set(obj) == set(AuditEvent.model_fields)
    back = AuditEvent.from_bytes(data)
    assert back == e
    assert back.to_bytes() == data


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda o: json.dumps(o, sort_keys=True, indent=1).encode(), id="pretty-printed"),
        pytest.param(lambda o: json.dumps(dict(reversed(o.items())), separators=(",", ":")).encode(), id="unsorted"),
        pytest.param(lambda o: _canon({**o, "ts_utc": o["ts_utc"][:-1] + "+00:00"}), id="offset-instead-of-Z"),
        pytest.param(lambda o: _canon({k: v for k, v in o.items() if k != "dsr_id"}), id="missing-null-field"),
        pytest.param(lambda o: _canon({**o, "record_count": "5"}), id="number-as-string"),
        pytest.param(lambda o: _canon(o) + b"\n", id="trailing-newline"),
        pytest.param(lambda o: _canon({**o, "reason_code": "é"}).replace(b"\\u00e9", "é".encode()), id="raw-utf8"),
        pytest.param(lambda o: _canon(o).replace(b'{"action"', b'{"action":"pi.read","action"', 1), id="duplicate-key"),
        pytest.param(lambda o: _canon({**o, "extra": 1}), id="unknown-field"),
    ],
)
def test_non_canonical_bytes_are_refused(mangle) -> None:  # type: ignore[no-untyped-def]
    obj = json.loads(ev(record_count=5).to_bytes())
    with pytest.raises(AuditEventError):
        AuditEvent.from_bytes(mangle(obj))


def _canon(obj: dict) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


@pytest.mark.parametrize(
    "raw",
    [
        "member-42",
        "alice@example.com",
        "+8613800138000",
        "110101199003074518",  # a resident ID number
        ALICE.upper(),
        ALICE[:-1],
        ALICE + "0",
        "g" * 32,
    ],
)
def test_raw_identifiers_are_refused_as_subjects(raw: str) -> None:
    with pytest.raises(ValidationError, match="pseudonym"):
        ev(subject_pseudo_ids=[ALICE, raw])


def test_a_member_actor_is_named_by_pseudonym_only() -> None:
    assert ev(actor=Actor(type="member", id=ALICE, role="member")).actor.id == ALICE
    with pytest.raises(ValidationError, match="pseudonym"):
        Actor(type="member", id="member-42", role="member")


@pytest.mark.parametrize("action", ["consent.grnt", "node.start", "consent.", "CONSENT.GRANT", ""])
def test_an_unknown_action_is_refused(action: str) -> None:
    with pytest.raises(ValidationError, match="action"):
        ev(action)


# the node's own actions beyond the checklist's list
NODE_ACTIONS = {
    "pia.submitted",
    "feature.enable",
    "feature.disable",
    "dsr.escalated",
    "exchange.refused",
    "link.created",
    "fl.align",  # a PSI run between two nodes (issue 16): counts and the manifest of the common members
}


def test_every_action_of_the_checklist_is_known() -> None:
    checklist = (
        "consent.grant|withdraw|renew notice.publish pi.read|export|update|delete|anonymize pi.provide|receive "
        "pi.provide.denied xborder.transfer|block fl.round.start|contribute|exclude dp.budget_spend "
        "adm.decide|explain|optout|human_review dsr.received|verified|completed|refused retention.purge "
        "incident.detected|notified pia.approved audit.export key.create|rotate config.change staff.login gate.denied"
    )
    expanded = set()
    for group in checklist.split():
        head, _, tails = group.rpartition(".")
        expanded |= {f"{head}.{t}" for t in tails.split("|")}
    assert expanded | NODE_ACTIONS == ACTIONS


def test_times_are_kept_in_utc_and_naive_times_are_refused() -> None:
    shanghai = timezone(timedelta(hours=8))
    e = ev(ts_utc=datetime(2026, 11, 1, 8, 0, tzinfo=shanghai))
    assert e.ts_utc == T0
    assert e.ts_utc.utcoffset() == timedelta(0)
    assert b'"ts_utc":"2026-11-01T00:00:00.000000Z"' in e.to_bytes()
    with pytest.raises(ValidationError):
        ev(ts_utc=datetime(2026, 11, 1))


@pytest.mark.parametrize(
    "details",
    [
        {"nested": {"a": 1}},
        {"list": [1, 2]},
        {"nan": float("nan")},
        {"inf": float("inf")},
        {f"k{i}": i for i in range(33)},
        {"long": "x" * 1001},
        {"bad key": 1},
    ],
    ids=["nested", "list", "nan", "inf", "too-many-keys", "long-string", "bad-key"],
)
def test_details_hold_only_a_few_small_scalars(details: dict) -> None:
    with pytest.raises(ValidationError):
        ev(details=details)


def test_an_event_is_immutable() -> None:
    e = ev()
    with pytest.raises(ValidationError):
        e.action = "pi.read"  # type: ignore[misc]


# --- the trail --------------------------------------------------------------------------


def test_a_recorded_event_is_found_at_its_index(log: Log) -> None:
    trail = AuditTrail(log, NODE)
    log.append([b"not an audit event, but it takes index 0"])
    e = ev(subject_pseudo_ids=[ALICE])
    index = trail.record(e)
    assert index == 1
    assert list(trail.events(1)) == [(1, e)]
    assert log.entry(1).data == e.to_bytes()


def test_record_many_appends_one_batch_and_returns_its_first_index(log: Log) -> None:
    trail = AuditTrail(log, NODE)
    trail.record(ev())
    batch = [ev("pi.read"), ev("pi.export"), ev("pi.update")]
    assert trail.record_many(batch) == 1
    assert [(i, e.action) for i, e in trail.events(1)] == [(1, "pi.read"), (2, "pi.export"), (3, "pi.update")]


def test_record_many_appends_nothing_if_one_event_is_invalid(log: Log) -> None:
    trail = AuditTrail(log, NODE)
    invalid = ev().model_copy(update={"action": "made.up"})  # model_copy skips validation
    with pytest.raises(AuditEventError):
        trail.record_many([ev(), invalid])
    assert log.size == 0


def test_the_trail_refuses_another_nodes_event(log: Log) -> None:
    with pytest.raises(ValueError, match=r"b\.example"):
        AuditTrail(log, NODE).record(AuditEvent(node_id="b.example", actor=STAFF, action="pi.read"))
    assert log.size == 0


def test_reading_an_entry_that_is_not_an_event_names_its_index(log: Log) -> None:
    trail = AuditTrail(log, NODE)
    trail.record(ev())
    log.append([b'{"action":"node.start"}'])
    with pytest.raises(AuditEventError, match="ledger entry 1") as exc:
        list(trail.events())
    assert exc.value.index == 1


# --- filters ----------------------------------------------------------------------------


def test_the_time_range_includes_from_and_excludes_to() -> None:
    flt = AuditFilter(from_ts=T0, to_ts=T0 + timedelta(hours=1))
    assert flt.matches(ev(ts_utc=T0))
    assert flt.matches(ev(ts_utc=T0 + timedelta(minutes=59, seconds=59, microseconds=999999)))
    assert not flt.matches(ev(ts_utc=T0 + timedelta(hours=1)))
    assert not flt.matches(ev(ts_utc=T0 - timedelta(microseconds=1)))
    assert AuditFilter(to_ts=T0).matches(ev(ts_utc=T0 - timedelta(days=999)))


def test_the_time_range_compares_instants_whatever_the_zone() -> None:
    shanghai = timezone(timedelta(hours=8))
    flt = AuditFilter(from_ts=datetime(2026, 11, 1, 8, tzinfo=shanghai))
    assert flt.from_ts == T0
    assert flt.matches(ev(ts_utc=T0))


def test_several_actions_separated_by_commas_match_any_of_them() -> None:
    provisions = AuditFilter(action="pi.provide,xborder.transfer")
    assert provisions.matches(ev("pi.provide"))
    assert provisions.matches(ev("xborder.transfer"))
    assert not provisions.matches(ev("pi.provide.denied"))
    with pytest.raises(ValueError, match="unknown audit action"):
        AuditFilter(action="pi.provide,pi.provided")


def test_an_action_is_matched_exactly_or_by_a_prefix_ending_in_a_dot() -> None:
    assert AuditFilter(action="pi.provide").matches(ev("pi.provide"))
    assert not AuditFilter(action="pi.provide").matches(ev("pi.provide.denied"))
    assert AuditFilter(action="pi.provide.").matches(ev("pi.provide.denied"))
    assert not AuditFilter(action="pi.provide.").matches(ev("pi.provide"))
    family = AuditFilter(action="consent.")
    assert all(family.matches(ev(a)) for a in ("consent.grant", "consent.withdraw", "consent.renew"))
    assert not family.matches(ev("notice.publish"))


@pytest.mark.parametrize("action", ["consent.grnt", "consnt.", "consent", "pi.read."])
def test_a_filter_that_can_match_no_action_is_refused(action: str) -> None:
    with pytest.raises(ValidationError):
        AuditFilter(action=action)


def test_a_purpose_is_matched_exactly_or_by_a_family_ending_in_a_colon() -> None:
    coffee = ev("pi.provide", purpose_code="points_exchange:coffee")
    assert AuditFilter(purpose="points_exchange:coffee").matches(coffee)
    assert AuditFilter(purpose="points_exchange:").matches(coffee)
    assert not AuditFilter(purpose="points_exchange:tea").matches(coffee)
    assert not AuditFilter(purpose="points_exchange").matches(coffee)
    assert not AuditFilter(purpose="marketing").matches(ev())  # an event without a purpose matches no purpose


def test_a_subject_matches_events_listing_them_and_events_they_did() -> None:
    flt = AuditFilter(subject=ALICE)
    assert flt.matches(ev(subject_pseudo_ids=[BOB, ALICE]))
    assert flt.matches(ev(actor=Actor(type="member", id=ALICE, role="member")))
    assert not flt.matches(ev(subject_pseudo_ids=[BOB]))
    assert not flt.matches(ev(actor=Actor(type="staff", id=ALICE, role="operator")))  # a staff id is not a subject
    with pytest.raises(ValidationError, match="pseudonym"):
        AuditFilter(subject="member-42")


def test_a_recipient_matches_the_recipient_id() -> None:
    flt = AuditFilter(recipient="coffee.example")
    assert flt.matches(ev("pi.provide", recipient=Recipient(id="coffee.example", role="independent")))
    assert not flt.matches(ev("pi.provide", recipient=Recipient(id="tea.example")))
    assert not flt.matches(ev("pi.provide"))


def test_criteria_combine_with_and() -> None:
    flt = AuditFilter(action="consent.", subject=ALICE, from_ts=T0)
    assert flt.matches(ev(subject_pseudo_ids=[ALICE], ts_utc=T0))
    assert not flt.matches(ev("pi.read", subject_pseudo_ids=[ALICE], ts_utc=T0))
    assert not flt.matches(ev(subject_pseudo_ids=[BOB], ts_utc=T0))
    assert not flt.matches(ev(subject_pseudo_ids=[ALICE], ts_utc=T0 - timedelta(seconds=1)))
    assert AuditFilter().matches(ev())


def test_an_empty_time_range_is_refused() -> None:
    with pytest.raises(ValidationError, match="before"):
        AuditFilter(from_ts=T0, to_ts=T0)


def test_a_filter_round_trips_through_its_manifest_form() -> None:
    flt = AuditFilter(from_ts=T0, action="consent.", subject=ALICE, recipient="coffee.example")
    d = flt.to_dict()
    assert d == {
        "action": "consent.",
        "from_ts": "2026-11-01T00:00:00.000000Z",
        "purpose": None,
        "recipient": "coffee.example",
        "subject": ALICE,
        "to_ts": None,
    }
    assert AuditFilter.from_dict(d) == flt


@pytest.mark.parametrize(
    "change",
    [
        {"from_ts": "2026-11-01T08:00:00.000000+08:00"},
        {"from_ts": "2026-11-01T00:00:00Z"},
        {"to_ts": 1},
        {"extra": None},
    ],
    ids=["offset", "no-microseconds", "not-a-string", "extra-key"],
)
def test_a_non_canonical_manifest_filter_is_refused(change: dict) -> None:
    d = {**AuditFilter().to_dict(), **change}
    with pytest.raises(ValueError, match="filter"):
        AuditFilter.from_dict(d)
