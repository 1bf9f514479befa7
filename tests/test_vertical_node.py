"""Cross-brand runs between real nodes: phone numbers, the two consents, PSI over signed peer calls
through each node's egress check, vertical training charged to each brand's own budget, records."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from compliance.consent import ConsentAction
from compliance.phones import PhoneError, normalise_phone
from compliance.service import ConsentChange
from federation.psi import IntersectionTooSmall
from federation.vertical_server import VerticalSettings
from node.demo.vertical import shared_pair
from node.learning.alignment import AlignmentRefused
from node.learning.rows import ChurnWindow
from node.learning.store import NodePrivacyBook
from node.learning.vertical_run import vertical_nodes
from node.peers.outbound import PeerRefused
from node.runtime import Node

TODAY = datetime.now(UTC).date()
WINDOW = ChurnWindow(TODAY - timedelta(days=180), TODAY)
SHARED = 240  # people who are members of both brands


@pytest.fixture(autouse=True)
def _quiet_flower() -> None:
    logging.getLogger("flwr").setLevel(logging.WARNING)


@pytest.fixture
def brands(tmp_path: Path) -> Iterator[dict[str, Node]]:
    nodes = shared_pair(tmp_path, SHARED, 60)
    yield nodes
    for node in nodes.values():
        node.dispose()


def phone(i: int) -> str:
    return f"+86 139 {i // 10000:04d} {i % 10000:04d}"


def run(brands: dict[str, Node], name: str = "r1", minimum: int = 100):  # type: ignore[no-untyped-def]
    return vertical_nodes(
        brands["airline"], [brands["shop"]], name, WINDOW, VerticalSettings(run=name, epochs=5), minimum
    )


def events(node: Node, action: str) -> list[dict]:  # type: ignore[type-arg]
    return [e for e in (json.loads(x.data) for x in node.store.log("audit").entries()) if e["action"] == action]


# --- the shared identifier ---------------------------------------------------------------------


@pytest.mark.parametrize("text", ["13800138000", "+86 138 0013 8000", "0086-138-0013-8000", "(+86) 138 0013 8000"])
def test_every_usual_form_of_a_number_normalises_to_the_same_e164(text: str) -> None:
    assert normalise_phone(text) == "+8613800138000"


@pytest.mark.parametrize("text", ["", "12345", "not a phone", "+86 000", "1" * 50])
def test_a_number_that_is_not_valid_is_refused(text: str) -> None:
    with pytest.raises(PhoneError):
        normalise_phone(text)


def test_a_phone_number_is_sealed_at_rest_and_found_by_blind_index(brands: dict[str, Node]) -> None:
    node = brands["airline"]
    with node.store.engine.connect() as conn:
        raw = b"".join(bytes(r[0]) for r in conn.exec_driver_sql("SELECT phone_sealed FROM compliance_member"))
    assert b"+86139" not in raw
    assert node.consent.store.member("airline.alliance.example:0").phone == "+8613900000000"


def test_an_access_request_exports_the_phone_and_erasure_removes_it(brands: dict[str, Node]) -> None:
    node = brands["airline"]
    ref = f"{node.settings.node_id}:5"
    assert node.rights.access(ref)["member"]["phone"] == normalise_phone(phone(5))
    pseudonym = node.consent.member_pseudonym(ref)
    node.rights.erase(ref)
    assert pseudonym not in node.consent.cross_brand_cohort("shop.alliance.example")
    assert normalise_phone(phone(5)) not in node.consent.store.phones().values()


# --- who may be aligned --------------------------------------------------------------------------


def test_the_cohort_needs_both_consents_and_a_phone(brands: dict[str, Node]) -> None:
    node = brands["airline"]
    shop = brands["shop"].settings.node_id
    cohort = node.consent.cross_brand_cohort(shop)
    one, two, three = (f"{node.settings.node_id}:{i}" for i in (1, 2, 3))
    node.consent.change(one, ["joint_modeling"], ConsentAction.WITHDRAW)
    node.consent.change(two, [f"joint_modeling:{shop}"], ConsentAction.WITHDRAW)
    node.consent.set_phone(three, None)
    after = node.consent.cross_brand_cohort(shop)
    gone = {node.consent.member_pseudonym(r) for r in (one, two, three)}
    assert gone <= set(cohort)
    assert not gone & set(after)
    assert node.consent.cross_brand_cohort("coffee.alliance.example") == {}  # consent names one partner


# --- PSI over signed peer calls ----------------------------------------------------------------------


def test_psi_between_nodes_finds_exactly_the_shared_consenting_members(brands: dict[str, Node]) -> None:
    air, shop = brands["airline"], brands["shop"]
    aligned = air.alignment.align(shop.settings.node_id, f"{air.settings.node_id}/psi-1")
    theirs = shop.alignment.store.load(f"{air.settings.node_id}/psi-1")
    assert len(aligned.ids) == SHARED == len(theirs)
    assert set(aligned.ids) == set(theirs)  # the same alignment ids on both sides
    people = {aligned_member: None for aligned_member in aligned.ids.values()}
    expected = {air.consent.member_pseudonym(f"{air.settings.node_id}:{i}") for i in range(60, SHARED + 60)}
    assert set(people) == expected
    assert (aligned.mine, aligned.theirs) == (SHARED + 60, SHARED + 60)


def test_each_side_audits_the_alignment_with_counts_and_a_manifest(brands: dict[str, Node]) -> None:
    air, shop = brands["airline"], brands["shop"]
    air.alignment.align(shop.settings.node_id, f"{air.settings.node_id}/psi-2")
    for node, role in ((air, "starter"), (shop, "answerer")):
        [event] = events(node, "fl.align")
        assert (event["details"]["role"], event["details"]["common"]) == (role, SHARED)
        assert len(event["details"]["members_sha256"]) == 64
    assert events(air, "pi.provide")  # each side's points left through its egress check
    assert events(shop, "pi.provide")


def test_an_intersection_below_the_minimum_is_refused_by_both(brands: dict[str, Node]) -> None:
    air, shop = brands["airline"], brands["shop"]
    with pytest.raises(PeerRefused, match=r"minimum|fewer"):
        air.alignment.align(shop.settings.node_id, f"{air.settings.node_id}/psi-3", minimum=SHARED + 1)
    assert shop.alignment.store.load(f"{air.settings.node_id}/psi-3") == {}


def test_a_run_named_for_another_label_holder_is_refused(brands: dict[str, Node]) -> None:
    air, shop = brands["airline"], brands["shop"]
    with pytest.raises(PeerRefused, match=r"is named"):
        air.alignment.align(shop.settings.node_id, f"{shop.settings.node_id}/stolen")


def test_nothing_is_aligned_while_joint_modeling_is_switched_off_at_the_partner(brands: dict[str, Node]) -> None:
    from compliance.pia import Feature
    from node.core.auth import Caller, Role, current_caller

    air, shop = brands["airline"], brands["shop"]
    token = current_caller.set(Caller(Role.OPERATOR, "olga"))
    try:
        shop.pia.disable(Feature.JOINT_MODELING, "olga")
    finally:
        current_caller.reset(token)
    with pytest.raises(PeerRefused, match="refused"):  # the partner's egress check refuses its points
        air.alignment.align(shop.settings.node_id, f"{air.settings.node_id}/psi-4")
    assert shop.alignment.store.load(f"{air.settings.node_id}/psi-4") == {}


# --- the vertical run ------------------------------------------------------------------------------


def test_a_vertical_run_is_recorded_and_charged_at_both_nodes(brands: dict[str, Node]) -> None:
    outcome = run(brands)
    air, shop = brands["airline"], brands["shop"]
    run_name = f"{air.settings.node_id}/r1"
    assert outcome.run == run_name
    [mine] = air.vertical.runs()
    [theirs] = shop.vertical.runs()
    assert (mine.role, theirs.role, theirs.label_holder) == ("label_holder", "partner", air.settings.node_id)
    assert set(mine.contributions) == {shop.settings.node_id}
    for node in (air, shop):  # both charged to their own joint_modeling book, within epsilon 3
        state = NodePrivacyBook(node.store.engine).run(run_name)
        assert state is not None
        assert state.history
    assert 0 < outcome.epsilon[air.settings.node_id] <= 3.0 + 1e-6
    assert 0 < outcome.epsilon[shop.settings.node_id] <= 3.0 + 1e-6
    assert air.alignment.store.load(run_name) == {}  # dropped once the run is recorded
    assert shop.alignment.store.load(run_name) == {}


def test_the_label_holder_keeps_a_score_per_aligned_member_exported_and_erased_with_them(
    brands: dict[str, Node],
) -> None:
    outcome = run(brands)
    air = brands["airline"]
    assert outcome.scored > 0
    ref = next(f"{air.settings.node_id}:{i}" for i in range(60, SHARED + 60)
               if air.vertical.latest_score(air.consent.member_pseudonym(f"{air.settings.node_id}:{i}")))
    assert air.rights.access(ref)["vertical_scores"]
    pseudonym = air.consent.member_pseudonym(ref)
    air.rights.erase(ref)
    assert air.vertical.latest_score(pseudonym) is None


def test_a_withdrawal_counts_from_the_next_run(brands: dict[str, Node]) -> None:
    air, shop = brands["airline"], brands["shop"]
    run(brands, "r1")
    refs = [f"{air.settings.node_id}:{i}" for i in range(60, 80)]
    air.consent.change_many(
        [ConsentChange(r, (f"joint_modeling:{shop.settings.node_id}",), ConsentAction.WITHDRAW) for r in refs]
    )
    second = run(brands, "r2")
    assert second.aligned[shop.settings.node_id] == SHARED - 20


def test_a_brand_past_its_budget_refuses_the_run(brands: dict[str, Node]) -> None:
    shop = brands["shop"]
    NodePrivacyBook(shop.store.engine).set_budget(0.5)
    outcome = run(brands)
    assert outcome.refused.get(shop.settings.node_id)
    assert outcome.used == []


def test_too_few_shared_members_is_refused_before_anything_is_trained(brands: dict[str, Node]) -> None:
    with pytest.raises(IntersectionTooSmall):
        run(brands, minimum=SHARED + 1000)
    assert brands["airline"].vertical.runs() == []


# --- contributions in the settlement window's report ---------------------------------------------


def test_contributions_are_signed_by_the_label_holder_and_listed_for_the_window(brands: dict[str, Node]) -> None:
    from node.settlement.contributions import contributions_file, read_contributions
    from node.settlement.statements import Window

    run(brands)
    air, shop = brands["airline"], brands["shop"]
    window = Window(datetime.now(UTC) - timedelta(days=1), datetime.now(UTC) + timedelta(days=1))
    led = [r.to_json() for r in air.vertical.runs(window.start, window.end) if r.role == "label_holder"]
    data = json.loads(json.dumps(contributions_file(air.settings.node_id, window, led, air.signer)))
    _, [c] = read_contributions(data, air.signer.verifier())
    assert (c.label_holder, c.partner, c.members) == (air.settings.node_id, shop.settings.node_id, led[0]["members"])
    assert shop.vertical.runs(window.start, window.end)[0].role == "partner"  # a partner leads nothing here


def test_a_tampered_contributions_file_is_refused(brands: dict[str, Node]) -> None:
    from node.settlement.contributions import contributions_file, read_contributions
    from node.settlement.statements import SettlementError, Window

    run(brands)
    air = brands["airline"]
    window = Window(datetime.now(UTC) - timedelta(days=1), datetime.now(UTC) + timedelta(days=1))
    led = [r.to_json() for r in air.vertical.runs(window.start, window.end)]
    data = contributions_file(air.settings.node_id, window, led, air.signer)
    partner = next(iter(data["runs"][0]["contributions"]))
    data["runs"][0]["contributions"][partner] = 0.5
    with pytest.raises(SettlementError, match="does not verify"):
        read_contributions(data, air.signer.verifier())


# --- the Deployment Engine ----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_vertical_run_on_the_deployment_engine_is_recorded_like_in_process(
    brands: dict[str, Node], tmp_path: Path
) -> None:
    air, shop = brands["airline"], brands["shop"]
    outcome = vertical_nodes(air, [shop], "deployed", WINDOW, VerticalSettings(run="deployed", epochs=5),
                             deployment=tmp_path / "flower")
    run_name = f"{air.settings.node_id}/deployed"
    assert (outcome.run, outcome.aligned) == (run_name, {shop.settings.node_id: SHARED})
    assert outcome.seconds_per_round > 0
    assert outcome.scored > 0
    assert 0 < outcome.epsilon[shop.settings.node_id] <= 3.0 + 1e-6  # the partner's SuperNode charged its book
    [mine], [theirs] = air.vertical.runs(), shop.vertical.runs()
    assert (mine.role, theirs.role) == ("label_holder", "partner")
    assert NodePrivacyBook(shop.store.engine).run(run_name).history
    assert shop.alignment.store.load(run_name) == {}
    assert (tmp_path / "flower" / "tls").exists()  # TLS and SuperNode auth


# --- what a dishonest peer cannot do (an independent review's findings) -------------------------------


def _open_psi(brands: dict[str, Node], name: str) -> tuple[Node, str, str, bytes]:
    """The shop answering an airline PSI run opened by hand: (shop, caller, run, the starter's half)."""
    import hashlib
    import secrets

    air, shop = brands["airline"], brands["shop"]
    caller, run, half = air.settings.node_id, f"{air.settings.node_id}/{name}", secrets.token_bytes(32)
    shop.alignment.on_open(caller, run, hashlib.sha256(half).hexdigest(), 100)
    return shop, caller, run, half


def _points(n: int) -> str:
    import base64

    from federation.psi import Party

    return base64.b64encode(Party([f"+8613{i:09d}".encode() for i in range(n)], bytes(32)).blinded()).decode()


def test_no_point_is_blinded_once_the_answerers_own_points_went_out(brands: dict[str, Node]) -> None:
    # otherwise the starter could blind guessed numbers afterwards and compare: an oracle on phone numbers
    shop, caller, run, half = _open_psi(brands, "oracle")
    shop.alignment.on_points(caller, run, 0, 1, _points(5), half.hex())
    shop.alignment.on_theirs(caller, run, 0)
    with pytest.raises(AlignmentRefused, match="not the next one"):
        shop.alignment.on_points(caller, run, 1, 1, _points(5), None)
    with pytest.raises(AlignmentRefused, match="no alignment"):  # the run is void
        shop.alignment.on_theirs(caller, run, 0)


def test_a_malformed_salt_or_point_is_a_refusal_not_a_server_error(brands: dict[str, Node]) -> None:
    shop, caller, run, _ = _open_psi(brands, "bad-salt")
    with pytest.raises(AlignmentRefused, match="salt"):
        shop.alignment.on_points(caller, run, 0, 1, _points(3), "zz" * 32)
    shop, caller, run, half = _open_psi(brands, "bad-point")
    with pytest.raises(AlignmentRefused, match=r"bad_message|point"):
        shop.alignment.on_points(caller, run, 0, 1, __import__("base64").b64encode(bytes(64)).decode(), half.hex())


def test_a_phone_number_two_members_gave_aligns_neither(brands: dict[str, Node]) -> None:
    air = brands["airline"]
    shop_id = brands["shop"].settings.node_id
    first, second = f"{air.settings.node_id}:1", f"{air.settings.node_id}:2"
    air.consent.set_phone(second, phone(1))
    cohort = air.consent.cross_brand_cohort(shop_id)
    assert air.consent.member_pseudonym(first) not in cohort
    assert air.consent.member_pseudonym(second) not in cohort


def test_a_partner_spends_by_its_own_settings_not_the_label_holders(brands: dict[str, Node]) -> None:
    shop = brands["shop"]
    shop.settings.cross_brand_epsilon = 1.0
    outcome = vertical_nodes(brands["airline"], [shop], "own-terms", WINDOW, VerticalSettings(run="x", epsilon=3.0,
                                                                                              epochs=5))
    assert 0 < outcome.epsilon[shop.settings.node_id] <= 1.0 + 1e-6


def test_a_partner_refuses_a_run_name_it_already_spent_on(brands: dict[str, Node]) -> None:
    run(brands, "once")
    again = run(brands, "once")  # a label holder starting the same run again (say, a new Flower run)
    assert brands["shop"].settings.node_id in again.refused
    assert "used once" in again.refused[brands["shop"].settings.node_id]
