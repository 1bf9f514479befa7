"""PIPL-MIN-01: every stored column is kept for a declared purpose and holds a declared PI category.

The declarations are ``compliance/data/columns.json``; :mod:`compliance.columns` checks them. The
columns checked are every table's: the node's (every module of ``node.tables.MODEL_MODULES``), the
ledger's and Alembic's version table; a test below holds that list to a real node's database. The
tests at the end feed the checker broken declarations, so each check provably can fail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import column as sql_column
from sqlalchemy import inspect, select, table

from compliance import columns
from compliance.columns import COLUMNS_FILE, ColumnMapError, ColumnUse, declared_columns, parse
from compliance.purposes import catalogue
from ledger import storage
from node import tables as node_tables
from node.runtime import Node

ALEMBIC_VERSION = ("alembic_version", "version_num")  # created by Alembic itself, in every node's database


def stored_columns() -> set[tuple[str, str]]:
    """Every (table, column) a node's database stores: the models' tables, the ledger's, Alembic's."""
    tables = [*node_tables.metadata().tables.values(), *storage.TABLES]
    return {(t.name, c.name) for t in tables for c in t.columns} | {ALEMBIC_VERSION}


def _failure(problems: list[str]) -> str:
    return "\n".join(problems) + "\n\n" + columns.HOW_TO_DECLARE


# --- the node's own declarations ------------------------------------------------------------------


def test_every_stored_column_is_declared_with_a_purpose_and_a_category() -> None:
    problems = columns.undeclared(declared_columns(), stored_columns())
    assert not problems, _failure(problems)


def test_no_declaration_names_a_column_that_is_no_longer_stored() -> None:
    problems = columns.stale(declared_columns(), stored_columns())
    assert not problems, _failure(problems)


def test_every_declaration_agrees_with_the_catalogue_and_the_bases() -> None:
    problems = columns.invalid(declared_columns())
    assert not problems, _failure(problems)


def test_every_declared_purpose_is_in_the_catalogue_or_a_base() -> None:
    families = set(catalogue().families)
    for (t, c), use in declared_columns().items():
        assert use.purpose in columns.BASES or use.purpose in families, f"{t}.{c}: {use.purpose}"


def test_every_declared_category_is_in_the_catalogue_or_non_pi() -> None:
    for (t, c), use in declared_columns().items():
        assert use.category == "non_pi" or use.category in catalogue().categories, f"{t}.{c}: {use.category}"


def test_a_column_kept_for_a_catalogue_purpose_holds_only_categories_that_purpose_declares() -> None:
    # the same list egress checks a payload against (node/peers/outbound.py): storage and sending agree
    for (t, c), use in declared_columns().items():
        if use.purpose in columns.BASES or use.category == "non_pi":
            continue
        assert use.category in catalogue().families[use.purpose]["pi_categories"], f"{t}.{c}"


def test_operational_columns_hold_no_personal_information() -> None:
    operational = {k: u.category for k, u in declared_columns().items() if u.purpose == columns.OPERATIONS}
    assert operational
    assert set(operational.values()) == {"non_pi"}


#: What compliance/fieldcrypt.py seals (and under which context), with the category each holds.
SEALED = {
    ("compliance_member", "ref_sealed"): ("identity.reference", "member.ref"),
    ("compliance_member", "birth_sealed"): ("identity.birth_date", "member.birth_date"),
    ("compliance_member", "guardian_sealed"): ("minor.data", "member.guardian"),
    ("compliance_member", "phone_sealed"): ("contact.basic", "member.phone"),
    ("link_code", "member_ref_sealed"): ("identity.reference", "member_link.ref"),
    ("member_link", "member_ref_sealed"): ("identity.reference", "member_link.ref"),
}


def test_the_sealed_identifiers_birth_dates_and_guardians_are_declared_with_their_categories() -> None:
    declared = declared_columns()
    assert {k: (declared[k].category, declared[k].sealed) for k in SEALED} == SEALED


def test_every_column_of_a_sensitive_category_is_sealed_or_a_blind_index() -> None:
    sensitive = catalogue().sensitive_categories()
    held = {k: u for k, u in declared_columns().items() if u.category in sensitive}
    assert {("compliance_member", "guardian_index"), ("compliance_member", "guardian_sealed")} <= set(held)
    assert [k for k, u in held.items() if not u.protected] == []


def test_a_fresh_nodes_database_stores_exactly_the_columns_checked(node: Node) -> None:
    engine = node.store.engine
    found = inspect(engine)
    in_db = {
        (t, c["name"]) for t in found.get_table_names() if not t.startswith("sqlite_") for c in found.get_columns(t)
    }
    assert in_db == stored_columns(), "models and database differ: tests/test_migrations.py says which migration"


def test_columns_declared_sealed_or_blind_indexed_hold_only_what_the_data_key_opens(
    make_node: Callable[..., Node],
) -> None:
    node = make_node()
    written = {"PARENT-13800138000", "CHILD-13900139000", "2019-04-05", "+8613800138000"}
    node.consent.register_member("PARENT-13800138000")
    node.consent.register_member("CHILD-13900139000", date(2019, 4, 5), "PARENT-13800138000")
    node.consent.set_phone("PARENT-13800138000", "+8613800138000")
    member = node.consent.member_pseudonym("PARENT-13800138000")
    node.links.issue_code(member, "b.example", member_ref="PARENT-13800138000")
    node.links.link(member, "b.example", "L-1", member_ref="PARENT-13800138000")
    node.portability.store.issue(member, "PARENT-13800138000", "b.example", "d" * 32)
    indexes = {node.cipher.index(v) for v in written}
    with node.store.engine.connect() as conn:
        for (t, c), use in declared_columns().items():
            if not use.protected:
                continue
            query = select(sql_column(c)).select_from(table(t)).where(sql_column(c).is_not(None))
            values = [v for (v,) in conn.execute(query)]
            assert values, f"{t}.{c} is declared protected: write a value into it above, so that this test checks it"
            for value in values:
                if use.sealed:
                    blob = bytes.fromhex(value) if isinstance(value, str) else value
                    assert node.cipher.open(blob, use.sealed) in written, f"{t}.{c}"
                else:
                    assert value in indexes, f"{t}.{c} holds something other than a blind index"


# --- the checker can fail -------------------------------------------------------------------------


def _new_problems(stored: set[tuple[str, str]]) -> list[str]:
    """What the check says about ``stored`` beyond what it says about the real columns (nothing, when they pass)."""
    known = set(columns.problems(declared_columns(), stored_columns()))
    return [p for p in columns.problems(declared_columns(), stored) if p not in known]


def test_an_undeclared_column_fails_the_check_naming_it_and_where_to_declare_it() -> None:
    problems = _new_problems(stored_columns() | {("purchase", "coupon_code")})
    assert problems == [
        'purchase.coupon_code is stored but not declared: add "coupon_code": {"purpose": "...", "category": "..."} '
        f'under "tables" → "purchase" in {COLUMNS_FILE}'
    ]


def test_a_new_table_nobody_declared_fails_for_each_column_and_asks_for_its_section() -> None:
    problems = _new_problems(stored_columns() | {("coupon", "coupon_id"), ("coupon", "member")})
    assert [p.split(" ")[0] for p in problems] == ["coupon.coupon_id", "coupon.member"]
    assert all('(a new "coupon" section)' in p for p in problems)


def test_a_declaration_of_a_column_no_longer_stored_fails_the_check() -> None:
    problems = _new_problems(stored_columns() - {("purchase", "day")})
    assert problems == [
        f"{COLUMNS_FILE} declares purchase.day, which no table stores: remove it, or rename it with the column"
    ]


@given(st.sets(st.sampled_from(sorted(stored_columns())), max_size=20))
def test_the_check_names_exactly_the_columns_left_undeclared(dropped: set[tuple[str, str]]) -> None:
    declared = {k: u for k, u in declared_columns().items() if k not in dropped}
    named = {tuple(p.split(" ")[0].split(".", 1)) for p in columns.undeclared(declared, stored_columns())}
    assert named == dropped


def _checked(use: ColumnUse) -> list[str]:
    return columns.invalid({("t", "c"): use})


@pytest.mark.parametrize(
    ("use", "expected"),
    [
        (ColumnUse("shoe_fitting", "non_pi"), "purpose 'shoe_fitting' is neither in compliance/data/purposes.json"),
        (ColumnUse("loyalty.core", "shoe.size"), "category 'shoe.size' is not in compliance/data/purposes.json"),
        (ColumnUse("operations", "contact.basic"), "the operations basis holds no personal information"),
        (
            ColumnUse("points_exchange:", "contact.basic"),
            "purpose points_exchange: does not declare category contact.basic",
        ),
        (
            ColumnUse("marketing", "identity.reference"),
            "purpose marketing does not declare category identity.reference",
        ),
        (
            ColumnUse("compliance", "minor.data"),
            "minor.data is sensitive (PIPL Art. 28) but the column is neither sealed",
        ),
        (ColumnUse("loyalty.core", "non_pi", sealed="member.ref"), "holds personal information, not non_pi"),
    ],
)
def test_a_declaration_the_catalogue_contradicts_fails_the_check(use: ColumnUse, expected: str) -> None:
    problems = _checked(use)
    assert len(problems) == 1, problems
    assert problems[0].startswith("t.c: ")
    assert expected in problems[0]


@pytest.mark.parametrize(
    "use",
    [
        ColumnUse("loyalty.core", "identity.reference", sealed="member.ref"),
        ColumnUse("points_exchange:coffee.example", "loyalty.transactions"),
        ColumnUse("sensitive:minor.data", "minor.data", blind_index=True),
        ColumnUse("compliance", "staff.identity"),
        ColumnUse("operations", "non_pi"),
    ],
)
def test_a_declaration_the_catalogue_allows_passes(use: ColumnUse) -> None:
    assert _checked(use) == []


def test_a_real_declaration_turned_sensitive_and_unsealed_fails() -> None:
    declared = dict(declared_columns())
    key = ("compliance_member", "guardian_sealed")
    declared[key] = replace(declared[key], sealed=None)
    assert columns.invalid(declared) == [
        "compliance_member.guardian_sealed: minor.data is sensitive (PIPL Art. 28) but the column is neither sealed "
        "nor a blind index: seal it with compliance/fieldcrypt.py and declare its context"
    ]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({}, '"tables" object'),
        ({"tables": {"purchase": []}}, "purchase: expected an object"),
        ({"tables": {"purchase": {"day": "loyalty.core"}}}, "purchase.day: expected"),
        ({"tables": {"purchase": {"day": {"purpose": "loyalty.core"}}}}, "purchase.day: 'category' must be"),
        ({"tables": {"purchase": {"day": {"purpose": "x", "category": "y", "why": "z"}}}}, "unknown keys ['why']"),
        ({"tables": {"purchase": {"day": {"purpose": "x", "category": "y", "sealed": ""}}}}, "'sealed' must name"),
    ],
)
def test_a_malformed_declarations_file_is_refused_naming_the_column(raw: dict, expected: str) -> None:
    with pytest.raises(ColumnMapError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        parse(raw)
