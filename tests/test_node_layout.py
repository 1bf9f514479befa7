"""node/ stays easy to find one's way in: every wing says what it owns, and no room grows too big.

The limits are those of issue 13: a wing of about 12 modules at most, no module over 400 lines.
A module that outgrows them is split by job, not by line count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

NODE = Path(__file__).resolve().parent.parent / "node"
MAX_LINES = 400
MAX_MODULES_PER_WING = 12
WINGS = sorted(p.parent for p in NODE.rglob("__init__.py") if "migrations" not in p.parts)


@pytest.mark.parametrize("wing", WINGS, ids=lambda p: p.relative_to(NODE.parent).as_posix())
def test_every_wing_says_what_it_owns(wing: Path) -> None:
    docstring = ast.get_docstring(ast.parse((wing / "__init__.py").read_text())) or ""
    assert len(docstring.split()) >= 8, f"{wing}/__init__.py needs a docstring saying what it owns"


@pytest.mark.parametrize("wing", WINGS, ids=lambda p: p.relative_to(NODE.parent).as_posix())
def test_no_wing_holds_more_than_a_dozen_modules(wing: Path) -> None:
    modules = [p for p in wing.glob("*.py") if p.name != "__init__.py"]
    assert len(modules) <= MAX_MODULES_PER_WING, f"{wing} holds {len(modules)} modules: split it by capability"


def test_no_module_is_over_400_lines() -> None:
    long = {
        p.relative_to(NODE.parent).as_posix(): n
        for p in NODE.rglob("*.py")
        if "migrations" not in p.parts and (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_the_wings_are_the_ones_the_architecture_names() -> None:
    assert {w.relative_to(NODE).as_posix() for w in WINGS} == {
        ".",
        "api",
        "api/routes",
        "chain",
        "cli",
        "core",
        "demo",
        "exchange",
        "learning",
        "ops",
        "peers",
        "settlement",
        "wallet",
        "web",
    }
