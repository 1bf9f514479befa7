"""docs/architecture.md stays true: its module map names every module of the five packages, and only those.

The map is the first ``text`` block under "## Modules": a tree indented by two spaces per level,
each line starting with one or more comma-separated names (``name.py`` for a module, ``name/`` for
a package or folder) followed by what they are. Package ``__init__.py`` files are the folder lines
themselves; Alembic's migration scripts are the ``migrations/`` line.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ledger", "compliance", "federation", "contracts", "node")
NAMES = re.compile(r"^[\w.]+/?(?:, [\w.]+/?)*")


def module_map(doc: str) -> set[str]:
    """Every path the map names (folders end with ``/``), relative to the repository."""
    block = doc.split("## Modules", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    named: set[str] = set()
    stack: list[str] = []
    for line in block.splitlines():
        if not line.strip():
            continue
        depth = (len(line) - len(line.lstrip(" "))) // 2
        match = NAMES.match(line.strip())
        assert match, f"a map line must start with names: {line!r}"
        del stack[depth:]
        names = match.group(0).split(", ")
        for name in names:
            named.add("".join(stack) + name)
        if len(names) == 1 and names[0].endswith("/"):
            stack.append(names[0])
    return named


def modules() -> set[str]:
    """Every module of the five packages, as the map would name it."""
    found = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            rel = path.relative_to(ROOT).as_posix()
            if path.name == "__init__.py" or "/migrations/" in rel:
                continue
            found.add(rel)
    return found


def test_the_map_names_every_module() -> None:
    missing = sorted(modules() - module_map((ROOT / "docs" / "architecture.md").read_text()))
    assert not missing, f"docs/architecture.md does not name: {', '.join(missing)}"


def test_everything_the_map_names_exists() -> None:
    named = module_map((ROOT / "docs" / "architecture.md").read_text())
    stale = sorted(p for p in named if not (ROOT / p).exists())
    assert not stale, f"docs/architecture.md names what is not there: {', '.join(stale)}"


def test_the_map_reader_finds_nested_and_listed_names() -> None:
    doc = "## Modules\n\n```text\npkg/     a package\n  a.py, b.py  two\n  sub/  more\n    c.py  three\n  d.py\n```\n"
    assert module_map(doc) == {"pkg/", "pkg/a.py", "pkg/b.py", "pkg/sub/", "pkg/sub/c.py", "pkg/d.py"}
