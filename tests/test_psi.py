"""ECDH-PSI over ristretto255: exact intersections, per-run alignment ids, refusals of bad messages."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.psi import (
    POINT,
    IntersectionTooSmall,
    Party,
    PsiError,
    chunks,
    element_hash,
    intersect,
    joint_salt,
)
from federation.sodium import from_hash, scalarmult

#: RFC 9496 appendix A.3: 64 uniform bytes and the element the one-way map derives from them.
RFC_9496_MAP = [
    (
        "5d1be09e3d0c82fc538112490e35701979d99e06ca3e2b5b54bffe8b4dc772c1"
        "4d98b696a1bbfb5ca32c436cc61c16563790306c79eaca7705668b47dffe5bb6",
        "3066f82a1a747d45120d1740f14358531a8f04bbffe6a819f86dfe50f44a0a46",
    ),
    (
        "f116b34b8f17ceb56e8732a60d913dd10cce47a6d53bee9204be8b44f6678b27"
        "0102a56902e2488c46120e9276cfe54638286b9e4b3cdb470b542d46c2068d38",
        "f26e5b6f7d362d2d2a94c5d0e7602cb4773c95a2e5c31a64f133189fa76ed61b",
    ),
]
#: RFC 9496 appendix A.2: an encoding every implementation refuses (s = -1, which gives y = 0).
BAD_ENCODING = bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")


def phones(start: int, stop: int) -> list[bytes]:
    return [f"+86138{i:08d}".encode() for i in range(start, stop)]


@pytest.mark.parametrize(("uniform", "element"), RFC_9496_MAP)
def test_the_hash_to_group_is_rfc_9496s_one_way_map(uniform: str, element: str) -> None:
    assert from_hash(bytes.fromhex(uniform)).hex() == element


@settings(max_examples=25, deadline=None)
@given(
    a=st.sets(st.binary(min_size=1, max_size=12), max_size=40),
    b=st.sets(st.binary(min_size=1, max_size=12), max_size=40),
)
def test_the_intersection_is_exactly_the_common_items(a: set[bytes], b: set[bytes]) -> None:
    left, right = intersect(sorted(a), sorted(b), minimum=0)
    items_a, items_b = sorted(a), sorted(b)
    assert {items_a[i] for i in left.ids.values()} == a & b
    assert {items_b[i] for i in right.ids.values()} == a & b


def test_both_sides_give_each_common_item_the_same_alignment_id() -> None:
    a, b = phones(0, 300), phones(150, 500)
    left, right = intersect(a, b, minimum=100)
    assert set(left.ids) == set(right.ids)
    assert all(a[left.ids[k]] == b[right.ids[k]] for k in left.ids)
    assert (len(left), left.mine, left.theirs) == (150, 300, 350)


def test_alignment_ids_are_new_every_run_and_never_the_items() -> None:
    a = phones(0, 120)
    first, _ = intersect(a, a)
    second, _ = intersect(a, a)
    assert not set(first.ids) & set(second.ids)
    assert not any(item.decode() in key or item.hex() in key for key in first.ids for item in a)


def test_an_intersection_below_the_minimum_is_refused() -> None:
    with pytest.raises(IntersectionTooSmall, match="99 members, fewer than the minimum of 100"):
        intersect(phones(0, 99), phones(0, 500))


def test_the_default_minimum_is_one_hundred() -> None:
    salt = joint_salt(os.urandom(32), os.urandom(32))
    a, b = Party(phones(0, 50), salt), Party(phones(0, 50), salt)
    a_points, b_points = a.blinded(), b.blinded()
    with pytest.raises(IntersectionTooSmall):
        a.finish(b.reblind(a_points), a.reblind(b_points))


def test_what_crosses_is_blinded_not_the_hash_of_an_item() -> None:
    salt = joint_salt(os.urandom(32), os.urandom(32))
    items = phones(0, 50)
    sent = set(Party(items, salt).blinded()[i : i + POINT] for i in range(0, 50 * POINT, POINT))
    hashed = {from_hash(element_hash(salt, x)) for x in items}
    assert not sent & hashed
    assert not any(element_hash(salt, x)[:POINT] in sent for x in items)


def test_a_message_that_is_not_whole_points_is_refused() -> None:
    party = Party(phones(0, 3), joint_salt(os.urandom(32), os.urandom(32)))
    with pytest.raises(PsiError, match="multiple of 32"):
        party.reblind(b"\x01" * 33)


def test_a_count_other_than_announced_is_refused() -> None:
    salt = joint_salt(os.urandom(32), os.urandom(32))
    other = Party(phones(0, 4), salt).blinded()
    with pytest.raises(PsiError, match="3 announced"):
        Party(phones(0, 3), salt).reblind(other, expected=3)


@pytest.mark.parametrize("point", [BAD_ENCODING, bytes(32)], ids=["s=-1", "identity"])
def test_a_point_that_is_not_a_valid_group_element_is_refused(point: bytes) -> None:
    party = Party(phones(0, 3), joint_salt(os.urandom(32), os.urandom(32)))
    with pytest.raises(PsiError, match="not a valid ristretto255"):
        party.reblind(point)


def test_the_wrong_number_of_own_points_back_is_refused() -> None:
    salt = joint_salt(os.urandom(32), os.urandom(32))
    a, b = Party(phones(0, 5), salt), Party(phones(0, 5), salt)
    back = b.reblind(a.blinded())
    with pytest.raises(PsiError, match="4 of this side's points came back, 5 were sent"):
        a.finish(back[:-POINT], a.reblind(b.blinded()), minimum=0)


def test_duplicate_items_are_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        Party([b"x", b"x"], joint_salt(os.urandom(32), os.urandom(32)))


def test_the_salt_takes_both_sides_contributions() -> None:
    a, b = os.urandom(32), os.urandom(32)
    assert joint_salt(a, b) != joint_salt(a, os.urandom(32))
    assert joint_salt(a, b) != joint_salt(b, a)
    with pytest.raises(PsiError, match="32 random bytes"):
        joint_salt(a, b"short")


def test_chunks_keep_every_point_in_order() -> None:
    blob = os.urandom(POINT * 10)
    parts = chunks(blob, points=3)
    assert [len(p) // POINT for p in parts] == [3, 3, 3, 1]
    assert b"".join(parts) == blob


def test_the_work_shared_by_threads_gives_what_one_thread_gives() -> None:
    salt = joint_salt(os.urandom(32), os.urandom(32))
    party = Party(phones(0, 10), salt, workers=2)
    blob = Party(phones(0, 5000), salt).blinded()
    one = Party(phones(0, 1), salt, workers=1)
    one._key = party._key  # the same secret: the same points, whoever computes them
    assert party.reblind(blob) == one.reblind(blob)


def test_without_a_system_libsodium_the_bundled_one_gives_the_same_points_and_leaves_no_file() -> None:
    uniform, element = RFC_9496_MAP[0]
    code = (
        "import sys; sys.modules['pysodium'] = None\n"
        "import importlib, os; from federation import sodium\n"
        f"assert sodium.from_hash(bytes.fromhex('{uniform}')).hex() == '{element}'\n"
        "k = sodium.scalar_random(); p = sodium.from_hash(os.urandom(64))\n"
        "assert len(sodium.scalarmult(k, p)) == 32\n"
        "print(sodium.BINDING, os.path.exists(importlib.import_module('rbcl._sodium').lib_path))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "rbcl (libsodium bundled) False"


def test_scalarmult_is_the_group_operation_so_blinding_commutes() -> None:
    from federation.sodium import scalar_random

    p = from_hash(os.urandom(64))
    a, b = scalar_random(), scalar_random()
    assert scalarmult(a, scalarmult(b, p)) == scalarmult(b, scalarmult(a, p))


def test_points_sent_twice_are_refused() -> None:
    salt = joint_salt(os.urandom(32), os.urandom(32))
    other = Party(phones(0, 3), salt).blinded()
    with pytest.raises(PsiError, match="more than once"):
        Party(phones(0, 3), salt).reblind(other + other[:POINT])


def test_a_peer_sending_back_this_sides_own_points_is_refused() -> None:
    salt = joint_salt(os.urandom(32), os.urandom(32))
    me = Party(phones(0, 200), salt)
    mine = me.blinded()
    with pytest.raises(PsiError, match="sent back points this side sent"):
        me.reblind(mine)  # reflected, every item would look shared
