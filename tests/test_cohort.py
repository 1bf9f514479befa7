"""The training cohort: exactly the members the consent gate would let through, decided in bulk."""

from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

from compliance_fixtures import consent_service
from hypothesis import given, settings
from hypothesis import strategies as st

from compliance.consent import ConsentAction
from compliance.service import ConsentDenied, ConsentService

PURPOSE = "joint_modeling"
TODAY = datetime.now(UTC).date()
ADULT, CHILD = date(1990, 1, 1), date(TODAY.year - 10, 1, 1)


def service(tmp: Path) -> ConsentService:
    return consent_service(tmp)


def gate_allows(svc: ConsentService, ref: str) -> bool:
    try:
        svc.check(ref, PURPOSE)
    except (ConsentDenied, LookupError):
        return False
    return True


actions = st.lists(
    st.tuples(st.integers(0, 5), st.sampled_from(["grant", "withdraw", "erase"])), max_size=14
)


@settings(max_examples=25, deadline=None)
@given(actions, st.lists(st.booleans(), min_size=6, max_size=6))
def test_the_cohort_is_everyone_the_gate_allows_and_no_one_else(steps, minors) -> None:  # type: ignore[no-untyped-def]
    with tempfile.TemporaryDirectory() as tmp:
        svc = service(Path(tmp))
        refs = [f"M-{i}" for i in range(6)]
        actor = {}
        for ref, minor in zip(refs, minors, strict=True):
            svc.register_member(ref, CHILD if minor else ADULT, "G-1" if minor else None)
            actor[ref] = "guardian:G-1" if minor else "self"  # a child's guardian consents for them
        erased: set[str] = set()
        for i, what in steps:
            ref = refs[i]
            if ref in erased:
                continue
            if what == "erase":
                svc.store.delete_member(ref)
                svc.keyring.shred(ref)
                erased.add(ref)
            else:
                action = ConsentAction.GRANT if what == "grant" else ConsentAction.WITHDRAW
                svc.change(ref, [PURPOSE], action, actor=actor[ref])
        expected = sorted(svc.member_pseudonym(r) for r in refs if r not in erased and gate_allows(svc, r))
        assert svc.cohort(PURPOSE) == expected


def test_a_member_who_withdraws_is_out_of_the_next_cohort(tmp_path: Path) -> None:
    svc = service(tmp_path)
    svc.register_member("M-1", ADULT)
    svc.change("M-1", [PURPOSE], ConsentAction.GRANT)
    assert svc.cohort(PURPOSE) == [svc.member_pseudonym("M-1")]
    svc.change("M-1", [PURPOSE], ConsentAction.WITHDRAW)
    assert svc.cohort(PURPOSE) == []


def test_a_manifest_commits_to_exactly_the_members_and_names_none() -> None:
    from federation.manifest import manifest

    assert manifest(["b", "a", "a"]) == manifest(["a", "b"])
    assert manifest(["a", "b"]) != manifest(["a", "c"])
    assert manifest(["a", "b"]).count == 2
    assert set(manifest(["member-1"]).to_json()) == {"count", "members_sha256"}
    assert "member-1" not in str(manifest(["member-1"]).to_json())
