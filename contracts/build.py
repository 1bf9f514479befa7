"""Compile the Vyper sources into ``contracts/build/<Name>.json`` (ABI, bytecode, compiler, source hash).

The artefacts are committed so a node needs no compiler to deploy; a test recompiles every source
and compares, so they cannot drift from the sources.

    python -m contracts.build            # rewrite the artefacts
    python -m contracts.build --check    # exit 1 if any artefact differs from a fresh compile
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "sources"
BUILD = HERE / "build"
NAMES = ("Registry", "Anchor", "Settlement")


def compile_one(name: str) -> dict[str, object]:
    """The artefact of ``sources/<name>.vy`` compiled now."""
    import vyper  # only the build needs the compiler

    source = (SOURCES / f"{name}.vy").read_text(encoding="utf-8")
    out = vyper.compile_code(source, contract_path=f"{name}.vy", output_formats=["abi", "bytecode"])
    return {
        "contract": name,
        "compiler": f"vyper {vyper.__version__}",
        "source_sha256": hashlib.sha256(source.encode()).hexdigest(),
        "abi": out["abi"],
        "bytecode": out["bytecode"],
    }


def artefact_text(artefact: dict[str, object]) -> str:
    """The artefact as written to disk (stable key order, one trailing newline)."""
    return json.dumps(artefact, indent=1, sort_keys=True) + "\n"


def load(name: str) -> dict[str, object]:
    """A committed artefact."""
    return json.loads((BUILD / f"{name}.json").read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    """Write (or ``--check``) every artefact."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="compare instead of writing")
    args = ap.parse_args(argv)
    BUILD.mkdir(exist_ok=True)
    stale = []
    for name in NAMES:
        text = artefact_text(compile_one(name))
        path = BUILD / f"{name}.json"
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    for name in stale:
        print(f"{name}: build/{name}.json differs from its source: run python -m contracts.build", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
