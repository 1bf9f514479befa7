"""Why each stored column is kept: its purpose and its PI category (PIPL Art. 6; checklist PIPL-MIN-01).

The declarations are data, ``compliance/data/columns.json``: under ``tables``, each column of each
table names the purpose it is stored for and the category of personal information it holds. The
purpose is one of the catalogue's (:mod:`compliance.purposes`) or one of two bases that are not
purposes offered to members: ``operations`` (running the node; never personal information) and
``compliance`` (records PIPL makes the handler keep). The category is one of the catalogue's, or
``non_pi``.

This module checks the declarations against the columns a database stores and against the
catalogue. It knows no database: the caller lists the stored ``(table, column)`` pairs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

from compliance.egress import NON_PI
from compliance.purposes import Catalogue, PurposeError, catalogue

#: Where the declarations live, as a developer finds the file in the repository.
COLUMNS_FILE = "compliance/data/columns.json"
OPERATIONS = "operations"
COMPLIANCE = "compliance"
#: The bases a column may be kept for besides a catalogue purpose, and what each covers.
BASES: Mapping[str, str] = {
    OPERATIONS: "running the node itself, e.g. ledger heads, checkpoints, duties, nonces; never personal information",
    COMPLIANCE: "records PIPL makes the handler keep (Art. 13(3)), e.g. consent history, the audit trail, rights "
    "requests, legal holds, impact assessments, cross-border counts, staff access",
}
HOW_TO_DECLARE = "\n".join(
    [
        f'Declare each column in {COLUMNS_FILE}, under "tables" → its table:',
        '  "<column>": {"purpose": "...", "category": "..."}',
        "purpose: what the column is stored for: a purpose of compliance/data/purposes.json (loyalty.core, a family",
        "  such as points_exchange: by its key, ...), or a base:",
        *(f"  {name}: {what}" for name, what in BASES.items()),
        f"category: the PI category of compliance/data/purposes.json the value is, or {NON_PI} (ids, hashes, counters",
        "  that say nothing about a person); a catalogue purpose must declare the category it holds.",
        'Where compliance/fieldcrypt.py protects the value, add "sealed": "<its context>" or "blind_index": true;',
        'add "note": "..." where the choice needs a reason.',
    ]
)
_KEYS = {"purpose", "category", "sealed", "blind_index", "note"}

Column = tuple[str, str]  # (table, column)


class ColumnMapError(ValueError):
    """A declarations file that is not shaped as documented (it names the table and column)."""


@dataclass(frozen=True)
class ColumnUse:
    """What one stored column is kept for and what it holds."""

    purpose: str
    category: str
    sealed: str | None = None  # the compliance/fieldcrypt.py context its values are sealed under
    blind_index: bool = False  # its values are HMAC blind indexes of an identifier
    note: str = ""

    @property
    def protected(self) -> bool:
        """Whether the value is unreadable without the node's data key (sealed or a blind index)."""
        return self.sealed is not None or self.blind_index


def parse(raw: Mapping[str, Any]) -> dict[Column, ColumnUse]:
    """The declarations in ``raw`` (the parsed JSON), or :class:`ColumnMapError` naming what is malformed."""
    tables = raw.get("tables")
    if not isinstance(tables, dict):
        raise ColumnMapError(f'{COLUMNS_FILE} needs a "tables" object: table → column → declaration')
    out: dict[Column, ColumnUse] = {}
    for table, columns in tables.items():
        if not isinstance(columns, dict):
            raise ColumnMapError(f"{table}: expected an object of columns")
        for column, spec in columns.items():
            out[(table, column)] = _use(f"{table}.{column}", spec)
    return out


def _use(name: str, spec: Any) -> ColumnUse:
    if not isinstance(spec, dict):
        raise ColumnMapError(f'{name}: expected {{"purpose": ..., "category": ...}}')
    unknown = set(spec) - _KEYS
    if unknown:
        raise ColumnMapError(f"{name}: unknown keys {sorted(unknown)} (allowed: {sorted(_KEYS)})")
    for key in ("purpose", "category"):
        if not isinstance(spec.get(key), str) or not spec[key]:
            raise ColumnMapError(f"{name}: {key!r} must be a non-empty string")
    sealed = spec.get("sealed")
    if sealed is not None and (not isinstance(sealed, str) or not sealed):
        raise ColumnMapError(f"{name}: 'sealed' must name the field-cipher context")
    if not isinstance(spec.get("blind_index", False), bool) or not isinstance(spec.get("note", ""), str):
        raise ColumnMapError(f"{name}: 'blind_index' must be true or false and 'note' a string")
    return ColumnUse(spec["purpose"], spec["category"], sealed, spec.get("blind_index", False), spec.get("note", ""))


@cache
def declared_columns() -> dict[Column, ColumnUse]:
    """The declarations shipped with the package (``compliance/data/columns.json``)."""
    return parse(json.loads(files("compliance").joinpath("data/columns.json").read_text()))


def undeclared(declared: Mapping[Column, ColumnUse], stored: Iterable[Column]) -> list[str]:
    """One problem per stored column nobody declared, saying exactly what to add and where."""
    return [
        f"{table}.{column} is stored but not declared: add "
        f'"{column}": {{"purpose": "...", "category": "..."}} under "tables" → "{table}" in {COLUMNS_FILE}'
        + ("" if any(t == table for t, _ in declared) else f' (a new "{table}" section)')
        for table, column in sorted(set(stored) - set(declared))
    ]


def stale(declared: Mapping[Column, ColumnUse], stored: Iterable[Column]) -> list[str]:
    """One problem per declaration of a column no table stores (dropped or renamed)."""
    return [
        f"{COLUMNS_FILE} declares {table}.{column}, which no table stores: remove it, or rename it with the column"
        for table, column in sorted(set(declared) - set(stored))
    ]


def invalid(declared: Mapping[Column, ColumnUse], cat: Catalogue | None = None) -> list[str]:
    """Declarations that contradict the catalogue or the bases' rules, one problem each."""
    cat = cat or catalogue()
    out: list[str] = []
    for (table, column), use in sorted(declared.items()):
        out += [f"{table}.{column}: {p}" for p in _use_problems(use, cat)]
    return out


def _use_problems(use: ColumnUse, cat: Catalogue) -> list[str]:
    problems = []
    known_category = use.category == NON_PI or use.category in cat.categories
    if not known_category:
        problems.append(
            f"category {use.category!r} is not in compliance/data/purposes.json pi_categories (nor {NON_PI}): "
            "use one of them, or add the category there with its description and sensitivity"
        )
    personal = use.category != NON_PI
    if use.purpose == OPERATIONS and personal:
        problems.append(
            f"the {OPERATIONS} basis holds no personal information, but the column is declared {use.category}: "
            "declare the purpose it is kept for"
        )
    elif use.purpose not in BASES:
        allowed = _purpose_categories(use.purpose, cat)
        if allowed is None:
            problems.append(
                f"purpose {use.purpose!r} is neither in compliance/data/purposes.json nor a base ({', '.join(BASES)})"
            )
        elif personal and known_category and use.category not in allowed:
            problems.append(
                f"purpose {use.purpose} does not declare category {use.category} (it declares "
                f"{', '.join(allowed) or 'none'}): declare the purpose that uses it, or add the category to the "
                "purpose in compliance/data/purposes.json (egress then lets the purpose carry it too)"
            )
    if personal and known_category and cat.categories[use.category].sensitive and not use.protected:
        problems.append(
            f"{use.category} is sensitive (PIPL Art. 28) but the column is neither sealed nor a blind index: "
            "seal it with compliance/fieldcrypt.py and declare its context"
        )
    if not personal and use.protected:
        problems.append(f"a sealed or blind-indexed column holds personal information, not {NON_PI}")
    return problems


def _purpose_categories(code: str, cat: Catalogue) -> tuple[str, ...] | None:
    """The categories a catalogue purpose (a family key such as ``points_exchange:``, or a code) declares."""
    if code.endswith(":"):
        spec = cat.families.get(code)
        return None if spec is None else tuple(spec["pi_categories"])
    try:
        return cat.purpose(code).pi_categories
    except PurposeError:
        return None


def problems(declared: Mapping[Column, ColumnUse], stored: Iterable[Column], cat: Catalogue | None = None) -> list[str]:
    """Everything wrong with ``declared`` against the ``stored`` columns and the catalogue (empty: all good)."""
    stored = set(stored)
    return undeclared(declared, stored) + stale(declared, stored) + invalid(declared, cat)
