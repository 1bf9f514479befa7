"""Linking a member across brands: one-time hashed codes, pairwise link ids, withdrawal unlinks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from compliance_fixtures import notice_data

from compliance.consent import ConsentAction
from compliance.notices import parse_notice
from node.exchange.links import CODE_TTL, LinkError, code_hash, new_link_id
from node.runtime import Node

NOW = datetime(2026, 11, 22, 8, tzinfo=UTC)
M = "a" * 32


def test_a_code_names_its_member_once(node: Node) -> None:
    code = node.links.issue_code(M, "shop.example", NOW)
    assert node.links.claim_code(code.lower(), "shop.example", NOW) == M  # typed in any case
    with pytest.raises(LinkError) as info:
        node.links.claim_code(code, "shop.example", NOW)
    assert info.value.reason == "used_code"


@pytest.mark.parametrize(
    ("peer", "delay", "reason"),
    [("cafe.example", timedelta(0), "wrong_brand"), ("shop.example", CODE_TTL, "expired_code")],
)
def test_a_code_for_another_brand_or_past_its_time_is_refused(
    node: Node, peer: str, delay: timedelta, reason: str
) -> None:
    code = node.links.issue_code(M, "shop.example", NOW)
    with pytest.raises(LinkError) as info:
        node.links.claim_code(code, peer, NOW + delay)
    assert info.value.reason == reason


def test_an_unknown_code_is_refused(node: Node) -> None:
    with pytest.raises(LinkError, match="no such"):
        node.links.claim_code("AAAA-BBBB-CCCC-DDDD", "shop.example", NOW)


def test_codes_are_stored_only_as_hashes(node: Node) -> None:
    code = node.links.issue_code(M, "shop.example", NOW)
    node.dispose()
    raw = b"".join(p.read_bytes() for p in node.settings.data_dir.glob("node.db*"))
    assert code.replace("-", "").encode() not in raw
    assert code_hash(code).encode() in raw


def test_link_ids_are_pairwise_and_one_per_brand(node: Node) -> None:
    shop, cafe = new_link_id(), new_link_id()
    node.links.link(M, "shop.example", shop, NOW)
    node.links.link(M, "cafe.example", cafe, NOW)
    assert shop != cafe
    assert node.links.member_of("shop.example", shop) == M
    assert node.links.member_of("cafe.example", shop) is None  # a link id means nothing to another brand
    with pytest.raises(LinkError, match="already linked"):
        node.links.link(M, "shop.example", new_link_id(), NOW)


def test_withdrawing_the_exchange_consent_unlinks(node: Node) -> None:
    node.consent.publish_notice(parse_notice(notice_data()))
    node.consent.register_member("M-1")
    member = node.keyring.pseudonym("M-1", create=False)
    node.consent.change("M-1", ["points_exchange:shop.example"], ConsentAction.GRANT)
    link = new_link_id()
    node.links.link(member, "shop.example", link, NOW)
    node.consent.change("M-1", ["points_exchange:shop.example"], ConsentAction.WITHDRAW)
    assert node.links.link_of(member, "shop.example") is None
    assert node.links.member_of("shop.example", link) is None


def test_erasure_ends_the_links_and_drops_the_member_reference_kept_with_them(node: Node) -> None:
    node.consent.publish_notice(parse_notice(notice_data()))
    node.consent.register_member("M-1")
    member = node.keyring.pseudonym("M-1", create=False)
    node.consent.change("M-1", ["points_exchange:shop.example"], ConsentAction.GRANT)
    link = new_link_id()
    node.links.link(member, "shop.example", link, NOW, member_ref="M-1")
    code = node.links.issue_code(member, "cafe.example", NOW, member_ref="M-1")
    node.rights.erase("M-1")
    assert node.links.member_of("shop.example", link) is None  # a late credit is refused: not_linked
    assert node.links.member_ref(link) is None
    with pytest.raises(LinkError) as info:
        node.links.claim(code, "cafe.example", NOW)
    assert info.value.reason == "unknown_code"


def test_an_access_request_lists_the_members_links(node: Node) -> None:
    node.consent.publish_notice(parse_notice(notice_data()))
    node.consent.register_member("M-1")
    member = node.keyring.pseudonym("M-1", create=False)
    link = new_link_id()
    node.links.link(member, "shop.example", link, NOW, member_ref="M-1")
    [row] = node.rights.access("M-1")["links"]
    assert row == {"brand": "shop.example", "link_id": link, "linked_at": NOW.isoformat(), "unlinked_at": None}
