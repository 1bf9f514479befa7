"""The dependency rule: no import loops, and every import runs the way docs/architecture.md says.

The test reads every module's imports with :mod:`ast` (nothing is imported or run), builds a graph of
module → module, and checks it twice: for loops, and for imports against the direction below. The
graph builder and both checks take a root directory and the rules as parameters, so the synthetic
packages at the end, which prove that the checks can fail, go through exactly the same code as the
real tree.
"""

import ast
import textwrap
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------------------------------
# The rules. Keep them in step with docs/architecture.md, "Dependency direction": the doc says it in
# words, this says it as data, and the tests below hold the code to it.
# ---------------------------------------------------------------------------------------------------

# Which of our other packages each package may import (every package may import itself).
PACKAGE_MAY_IMPORT: Mapping[str, frozenset[str]] = {
    "ledger": frozenset(),
    "compliance": frozenset({"ledger"}),
    "contracts": frozenset({"ledger"}),
    "federation": frozenset(),
    "node": frozenset({"ledger", "compliance", "federation", "contracts"}),
}

# Inside node/, the wings and their floors. Floors are numbered from the top down: floor 0 is the
# entry point, floor 11 the foundation. An import may only go down, to a floor with a larger number,
# or stay inside its own wing; two wings on the same floor must not import each other.
NODE_FLOORS: Mapping[str, int] = {
    "node.__main__": 0,  # `python -m node`
    "node.cli": 1,
    "node.demo": 2,
    "node.web": 3,  # the pages, beside the API they extend into the site `serve` runs
    "node.api": 4,  # the HTTP entry point ...
    "node.clientapp": 4,  # ... and the ClientApp a Flower SuperNode loads: entry points side by side
    "node.vertical_apps": 4,  # the vertical run's ServerApp and ClientApp on the Deployment Engine
    "node.runtime_facts": 5,
    "node.ops": 5,  # logs, metrics and readiness of the running node: above the runtime it watches
    "node.runtime": 6,  # the composition root ...
    "node.tables": 6,  # ... and every table of the node's own, for Alembic (both gather the wings below)
    "node.learning": 7,
    "node.chain": 7,
    "node.settlement": 8,
    "node.exchange": 9,
    "node.peers": 10,
    "node.wallet": 11,
    "node.core": 12,
}

# Modules that import nothing of ours: the package `node` itself sits above no wing and below none.
# Since they import nothing, anyone may import them without a loop or an upward step.
IMPORT_NOTHING_OF_OURS: frozenset[str] = frozenset({"node"})


@dataclass(frozen=True)
class Rules:
    """Who may import whom: packages by an allow-list, the wings of one package by floors."""

    package_may_import: Mapping[str, frozenset[str]]
    floors: Mapping[str, int]
    import_nothing: frozenset[str] = frozenset()

    @property
    def packages(self) -> tuple[str, ...]:
        """The top-level packages the rules cover: the ones the graph is built from."""
        return tuple(sorted(self.package_may_import))


RULES = Rules(PACKAGE_MAY_IMPORT, NODE_FLOORS, IMPORT_NOTHING_OF_OURS)


# ---------------------------------------------------------------------------------------------------
# The module graph
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportGraph:
    """Our modules (name → file) and, for each, the modules of ours it imports."""

    files: Mapping[str, Path]
    imports: Mapping[str, frozenset[str]]


def module_name(root: Path, path: Path) -> str:
    """`node/api/routes/audit.py` → `node.api.routes.audit`; a package's `__init__.py` → the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def known_prefix(dotted: str, modules: Mapping[str, Path]) -> str | None:
    """The longest leading part of a dotted name that is one of our modules (`a.b.Thing` → `a.b`)."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def relative_base(importer: str, is_package: bool, level: int, module: str | None) -> str | None:
    """The absolute name `from .x import y` (level 1) or `from ..x import y` (level 2) starts from."""
    package = importer if is_package else importer.rpartition(".")[0]
    parts = package.split(".") if package else []
    if level - 1 >= len(parts):
        return None  # beyond the top-level package: Python refuses it too
    base = parts[: len(parts) - (level - 1)]
    return ".".join([*base, module] if module else base)


def imported_modules(importer: str, files: Mapping[str, Path], packages: Iterable[str]) -> set[str]:
    """Every module of ours that `importer` imports, wherever the import statement sits.

    All import statements count: at the top, inside functions, under `if TYPE_CHECKING:`. A loop
    dodged at run time by a function-local or type-only import is still a loop in the design, and
    it comes back the day someone moves the import to the top. (Names built at run time, such as
    `importlib.import_module(...)`, are not seen.)
    """
    path = files[importer]
    ours = set(packages)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = relative_base(importer, path.name == "__init__.py", node.level, node.module)
            else:
                base = node.module
            if base is None:
                continue
            # `from pkg import name` names the module `pkg.name` when there is one, else `pkg`.
            submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in files]
            targets = submodules if len(submodules) == len(node.names) else [*submodules, base]
        else:
            continue
        for target in targets:
            if target.partition(".")[0] not in ours:
                continue  # the standard library or a third-party package: not ours to check
            resolved = known_prefix(target, files)
            # Importing yourself is not a dependency between two modules.
            if resolved is not None and resolved != importer:
                found.add(resolved)
    return found


def build_import_graph(root: Path, packages: Iterable[str]) -> ImportGraph:
    """Walk every `*.py` under the given top-level packages of `root` and read its imports."""
    packages = tuple(packages)
    files = {module_name(root, path): path for package in packages for path in sorted((root / package).rglob("*.py"))}
    imports = {module: frozenset(imported_modules(module, files, packages)) for module in files}
    return ImportGraph(files, imports)


# ---------------------------------------------------------------------------------------------------
# The loop check
# ---------------------------------------------------------------------------------------------------


def shortest_loop_through(start: str, imports: Mapping[str, frozenset[str]]) -> list[str] | None:
    """The shortest chain of imports from `start` back to itself, `[start, ..., start]`, if any."""
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        for imported in sorted(imports.get(module, ())):
            if imported == start:
                back = [module]  # walk the breadth-first tree back from the last step to `start`
                while back[-1] != start:
                    back.append(came_from[back[-1]])
                return [*reversed(back), start]
            if imported not in came_from:
                came_from[imported] = module
                queue.append(imported)
    return None


def import_loops(graph: ImportGraph) -> list[list[str]]:
    """One shortest loop through every module that sits on a loop (each loop reported once).

    A tangle of many modules has more loops than anyone wants to read; one through each module names
    every module involved, and fixing those and running again shows whatever is left.
    """
    loops: list[list[str]] = []
    covered: set[str] = set()
    for module in sorted(graph.imports):
        if module in covered:
            continue
        loop = shortest_loop_through(module, graph.imports)
        if loop is not None:
            loops.append(loop)
            covered.update(loop)
    return loops


def describe_loop(loop: list[str]) -> str:
    """`a -> b -> a`."""
    return " -> ".join(loop)


# ---------------------------------------------------------------------------------------------------
# The direction check
# ---------------------------------------------------------------------------------------------------


def top_package(module: str) -> str:
    """`node.api.app` → `node`."""
    return module.partition(".")[0]


def wing_of(module: str, floors: Mapping[str, int]) -> str | None:
    """The wing (a key of `floors`) that holds `module`: the wing itself or anything inside it.

    Matched on whole dotted parts, so `node.runtime_facts` is not inside `node.runtime`.
    """
    holders = [wing for wing in floors if module == wing or module.startswith(wing + ".")]
    return max(holders, key=len, default=None)


def short(wing: str) -> str:
    """A wing's name inside its package, as the floors table reads it: `node.api` → `api`."""
    return wing.partition(".")[2] or wing


@dataclass(frozen=True)
class Violation:
    """One import against the direction, and the rule it breaks."""

    importer: str
    imported: str
    rule: str

    def __str__(self) -> str:
        return f"{self.importer} -> {self.imported} ({self.rule})"


def violation(importer: str, imported: str, rules: Rules) -> Violation | None:
    """The rule that `importer` importing `imported` breaks, if any."""
    if importer in rules.import_nothing:
        return Violation(importer, imported, f"package {importer} itself may import nothing of ours")
    source, target = top_package(importer), top_package(imported)
    if source != target:
        if target in rules.package_may_import.get(source, frozenset()):
            return None
        return Violation(importer, imported, f"package {source} may not import package {target}")
    if imported in rules.import_nothing:
        return None
    from_wing, to_wing = wing_of(importer, rules.floors), wing_of(imported, rules.floors)
    if from_wing is None or to_wing is None or from_wing == to_wing:
        return None  # inside one wing anything goes (but loops); a module in no wing fails its own test
    if rules.floors[to_wing] > rules.floors[from_wing]:
        return None
    return Violation(importer, imported, f"wing {short(from_wing)} may not import wing {short(to_wing)}")


def direction_violations(graph: ImportGraph, rules: Rules) -> list[Violation]:
    """Every import that goes up a floor, sideways to another wing, or to a package not allowed."""
    found = [
        violation(importer, imported, rules)
        for importer in sorted(graph.imports)
        for imported in sorted(graph.imports[importer])
    ]
    return [one for one in found if one is not None]


def modules_in_no_wing(graph: ImportGraph, rules: Rules) -> list[str]:
    """Modules of a package divided into wings that belong to none of them (a new wing, say)."""
    winged = {top_package(wing) for wing in rules.floors}
    return sorted(
        module
        for module in graph.files
        if top_package(module) in winged
        and module not in rules.import_nothing
        and wing_of(module, rules.floors) is None
    )


# ---------------------------------------------------------------------------------------------------
# Helpers for the tests
# ---------------------------------------------------------------------------------------------------


def fail_listing(heading: str, lines: Iterable[object]) -> None:
    """Fail with one line per finding, so the report reads as a list rather than a diff."""
    listed = [f"  {line}" for line in lines]
    if listed:
        pytest.fail("\n".join([heading, *listed]), pytrace=False)


def write_package(root: Path, files: Mapping[str, str]) -> Path:
    """Write a small synthetic package under `root` (relative path → source) and return `root`."""
    for relative, source in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def graph() -> ImportGraph:
    """The real tree's graph, read once for all the checks."""
    return build_import_graph(ROOT, RULES.packages)


def violations_from(graph: ImportGraph, packages: set[str]) -> list[Violation]:
    """The real tree's violations by modules of the given packages."""
    return [found for found in direction_violations(graph, RULES) if top_package(found.importer) in packages]


# ---------------------------------------------------------------------------------------------------
# The real tree
# ---------------------------------------------------------------------------------------------------


def test_the_graph_covers_all_five_packages(graph: ImportGraph) -> None:
    """A check over an empty graph would pass for the wrong reason."""
    assert {top_package(module) for module in graph.files} == set(RULES.packages)
    # `python -m node` runs the CLI: if this edge is missing, the builder reads no imports at all.
    assert any(wing_of(module, NODE_FLOORS) == "node.cli" for module in graph.imports["node.__main__"])


def test_no_module_imports_itself_back_through_a_loop(graph: ImportGraph) -> None:
    loops = import_loops(graph)
    fail_listing(
        "import loops (a function-local or TYPE_CHECKING import still closes a loop):", map(describe_loop, loops)
    )


def test_ledger_imports_nothing_of_ours(graph: ImportGraph) -> None:
    fail_listing("ledger imports against docs/architecture.md:", violations_from(graph, {"ledger"}))


def test_compliance_and_contracts_import_only_ledger(graph: ImportGraph) -> None:
    fail_listing(
        "compliance/contracts imports against docs/architecture.md:",
        violations_from(graph, {"compliance", "contracts"}),
    )


def test_federation_imports_none_of_ours(graph: ImportGraph) -> None:
    fail_listing("federation imports against docs/architecture.md:", violations_from(graph, {"federation"}))


def test_node_wings_import_only_downward(graph: ImportGraph) -> None:
    fail_listing("node imports against the wings' floors (see NODE_FLOORS):", violations_from(graph, {"node"}))


def test_every_node_module_belongs_to_a_wing_with_a_floor(graph: ImportGraph) -> None:
    """A new module or wing outside the table fails here, rather than escaping the direction check."""
    fail_listing(
        "node modules in no wing of NODE_FLOORS (add the wing with its floor, here and in the doc):",
        modules_in_no_wing(graph, RULES),
    )


# ---------------------------------------------------------------------------------------------------
# The checks can fail: small synthetic packages through the same code
# ---------------------------------------------------------------------------------------------------

SYNTHETIC = Rules(
    package_may_import={"pkg": frozenset()},
    floors={"pkg.top": 0, "pkg.left": 1, "pkg.right": 1, "pkg.bottom": 2},
    import_nothing=frozenset({"pkg"}),  # like `node`: the package itself is in no wing
)


def test_a_loop_closed_by_a_function_local_import_is_reported(tmp_path: Path) -> None:
    root = write_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "import pkg.b\n",
            "pkg/b.py": """\
            def late():
                from pkg import a  # dodges the loop at run time, not in the design

                return a
            """,
        },
    )
    loops = import_loops(build_import_graph(root, ["pkg"]))
    assert list(map(describe_loop, loops)) == ["pkg.a -> pkg.b -> pkg.a"]


def test_a_loop_through_a_type_checking_import_is_reported(tmp_path: Path) -> None:
    root = write_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg.b import thing\n",
            "pkg/b.py": "import typing\nif typing.TYPE_CHECKING:\n    from pkg.c import Other\nthing = 1\n",
            "pkg/c.py": "from pkg import a\nOther = object\n",
            "pkg/d.py": "import pkg.a\n",  # imports into the loop without being on it
        },
    )
    loops = import_loops(build_import_graph(root, ["pkg"]))
    assert list(map(describe_loop, loops)) == ["pkg.a -> pkg.b -> pkg.c -> pkg.a"]


def test_a_low_floor_importing_a_higher_one_is_reported(tmp_path: Path) -> None:
    root = write_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/top.py": "from pkg import bottom\n",  # downward: allowed
            "pkg/bottom/__init__.py": "",
            "pkg/bottom/store.py": "def f():\n    from pkg.top import x\n",  # upward
        },
    )
    found = direction_violations(build_import_graph(root, ["pkg"]), SYNTHETIC)
    assert list(map(str, found)) == ["pkg.bottom.store -> pkg.top (wing bottom may not import wing top)"]


def test_wings_on_the_same_floor_may_not_import_each_other(tmp_path: Path) -> None:
    root = write_package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/left.py": "import pkg.right\nimport pkg.bottom\n",
            "pkg/right.py": "",
            "pkg/bottom.py": "",
        },
    )
    found = direction_violations(build_import_graph(root, ["pkg"]), SYNTHETIC)
    assert list(map(str, found)) == ["pkg.left -> pkg.right (wing left may not import wing right)"]


def test_a_package_importing_one_it_may_not_is_reported(tmp_path: Path) -> None:
    rules = Rules(package_may_import={"low": frozenset(), "high": frozenset({"low"})}, floors={})
    root = write_package(
        tmp_path,
        {
            "low/__init__.py": "from high import api\n",
            "high/__init__.py": "",
            "high/api.py": "import low\n",
        },
    )
    found = direction_violations(build_import_graph(root, rules.packages), rules)
    assert list(map(str, found)) == ["low -> high.api (package low may not import package high)"]


def test_a_module_in_no_wing_is_reported(tmp_path: Path) -> None:
    root = write_package(tmp_path, {"pkg/__init__.py": "", "pkg/top.py": "", "pkg/annex/new.py": ""})
    assert modules_in_no_wing(build_import_graph(root, ["pkg"]), SYNTHETIC) == ["pkg.annex.new"]


def test_from_package_import_names_the_submodule_else_the_package(tmp_path: Path) -> None:
    root = write_package(
        tmp_path,
        {
            "pkg/__init__.py": "VALUE = 1\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/mod.py": "",
            "pkg/user.py": "import json\nimport pkg.sub.mod\nfrom pkg import VALUE\nfrom pkg.sub import mod\n",
        },
    )
    graph = build_import_graph(root, ["pkg"])
    assert graph.imports["pkg.user"] == {"pkg", "pkg.sub.mod"}  # `json` is not ours


def test_relative_imports_resolve_like_absolute_ones(tmp_path: Path) -> None:
    root = write_package(
        tmp_path,
        {
            "pkg/__init__.py": "from . import a\n",
            "pkg/a.py": "",
            "pkg/sub/__init__.py": "from .inner import x\n",
            "pkg/sub/inner.py": "from .. import a\nfrom ..sub import sibling\n",
            "pkg/sub/sibling.py": "",
        },
    )
    graph = build_import_graph(root, ["pkg"])
    assert graph.imports["pkg"] == {"pkg.a"}
    assert graph.imports["pkg.sub"] == {"pkg.sub.inner"}
    assert graph.imports["pkg.sub.inner"] == {"pkg.a", "pkg.sub.sibling"}
